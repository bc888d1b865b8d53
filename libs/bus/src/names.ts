import { InvalidNameError, PayloadTooLargeError } from "./errors.ts";

/** Longest job id (it becomes the `Nats-Msg-Id` header; step keys are 64 hex digits). */
export const MAX_JOB_ID_LENGTH = 256;
/** Longest job kind, subject or KV key we accept (NATS handles longer, but logs should not). */
export const MAX_NAME_LENGTH = 256;
/**
 * Message size limit of the in-memory bus: the NATS server default `max_payload` (1 MiB), so
 * code that passes in memory also passes on a default NATS server.
 */
export const MEMORY_MAX_PAYLOAD_BYTES = 1024 * 1024;
/** Bytes kept free under `max_payload` for headers and our envelope. */
export const HEADER_ALLOWANCE_BYTES = 4 * 1024;

const KIND = /^[a-z0-9][a-z0-9_-]*$/;
const JOB_ID = /^[\x21-\x7e]+$/;
const TOKEN = /^[A-Za-z0-9_-]+$/;
const KV_TOKEN = /^[A-Za-z0-9_=/-]+$/;

function checkLength(what: string, s: string, max: number): void {
  if (typeof s !== "string" || s.length === 0)
    throw new InvalidNameError(`${what} must be a non-empty string`);
  if (s.length > max)
    throw new InvalidNameError(`${what} is ${s.length} characters, over the ${max} limit`);
}

/** Job kinds are lower-case tokens: `capture`, `patch`, `trial-run`. */
export function validateKind(kind: string): string {
  checkLength("job kind", kind, MAX_NAME_LENGTH);
  if (!KIND.test(kind))
    throw new InvalidNameError(`job kind ${JSON.stringify(kind)} must match ${KIND}`);
  return kind;
}

/** Job ids are printable ASCII without spaces. */
export function validateJobId(id: string): string {
  checkLength("job id", id, MAX_JOB_ID_LENGTH);
  if (!JOB_ID.test(id))
    throw new InvalidNameError(
      `job id ${JSON.stringify(id)} must be printable ASCII without spaces`,
    );
  return id;
}

function validateDotted(what: string, s: string, token: RegExp, wildcards: boolean): string {
  checkLength(what, s, MAX_NAME_LENGTH);
  const parts = s.split(".");
  for (const [i, p] of parts.entries()) {
    if (wildcards && p === "*") continue;
    if (wildcards && p === ">" && i === parts.length - 1) continue;
    if (!token.test(p)) {
      throw new InvalidNameError(
        `${what} ${JSON.stringify(s)}: token ${i + 1} ${JSON.stringify(p)} must match ${token}${wildcards ? " (or be * or a final >)" : ""}`,
      );
    }
  }
  return s;
}

/** Event subjects (relative to `abl.event.`): `.`-joined `[A-Za-z0-9_-]` tokens. */
export function validateEventSubject(subject: string): string {
  if (typeof subject === "string" && subject.startsWith("abl.")) {
    throw new InvalidNameError(
      `event subject ${JSON.stringify(subject)} must be relative to abl.event. (drop the prefix)`,
    );
  }
  return validateDotted("event subject", subject, TOKEN, false);
}

/** Event subject filters: like subjects, with `*` and a final `>`. */
export function validateEventFilter(filter: string): string {
  if (typeof filter === "string" && filter.startsWith("abl.")) {
    throw new InvalidNameError(
      `event filter ${JSON.stringify(filter)} must be relative to abl.event. (drop the prefix)`,
    );
  }
  return validateDotted("event filter", filter, TOKEN, true);
}

/** KV bucket names: `[A-Za-z0-9_-]+` (what NATS allows). */
export function validateBucket(bucket: string): string {
  checkLength("kv bucket name", bucket, MAX_NAME_LENGTH);
  if (!TOKEN.test(bucket))
    throw new InvalidNameError(`kv bucket name ${JSON.stringify(bucket)} must match ${TOKEN}`);
  return bucket;
}

/** KV keys: `.`-joined `[A-Za-z0-9_=/-]` tokens (no empty token, no leading or trailing dot). */
export function validateKvKey(key: string): string {
  return validateDotted("kv key", key, KV_TOKEN, false);
}

/** KV key filters: like keys, with `*` and a final `>`. */
export function validateKvFilter(filter: string): string {
  return validateDotted("kv filter", filter, KV_TOKEN, true);
}

/** Whether a `.`-token subject matches a filter with `*` and final `>` wildcards. */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split(".");
  const s = subject.split(".");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (f[i] !== "*" && f[i] !== s[i]) return false;
  }
  return f.length === s.length;
}

/** JSON-encodes a payload and checks it against `limit` bytes. */
export function encodePayload(what: string, value: unknown, limit: number): Uint8Array {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new InvalidNameError(`${what} is not JSON-serialisable`, { cause: err });
  }
  if (text === undefined)
    throw new InvalidNameError(`${what} is not JSON-serialisable (got ${typeof value})`);
  const bytes = new TextEncoder().encode(text);
  if (bytes.byteLength > limit) throw new PayloadTooLargeError(what, bytes.byteLength, limit);
  return bytes;
}

/** Decodes a JSON payload. */
export function decodePayload(bytes: Uint8Array): unknown {
  return bytes.byteLength === 0 ? undefined : JSON.parse(new TextDecoder().decode(bytes));
}
