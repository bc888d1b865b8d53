import { StoreError } from "./errors.ts";

/** Yields `body` as chunks, whether it is one buffer or already a stream. */
export async function* chunksOf(
  body: Uint8Array | AsyncIterable<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  if (body instanceof Uint8Array) {
    signal?.throwIfAborted();
    yield body;
    return;
  }
  for await (const chunk of body) {
    signal?.throwIfAborted();
    if (!(chunk instanceof Uint8Array)) {
      throw new StoreError(`body chunks must be Uint8Array, got ${typeof chunk}`);
    }
    yield chunk;
  }
}

/** Reads a whole stream into one buffer. */
export async function collectBytes(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const c of stream) {
    parts.push(c);
    total += c.byteLength;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Validates `size`/`range` style numbers: non-negative safe integers. */
export function checkByteCount(what: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new StoreError(`${what} must be a non-negative integer, got ${n}`);
  }
  return n;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Validates a caller-given sha256 (lower-case hex). */
export function checkSha256(what: string, s: string): string {
  if (!SHA256_HEX.test(s))
    throw new StoreError(`${what} must be 64 lower-case hex digits, got ${JSON.stringify(s)}`);
  return s;
}
