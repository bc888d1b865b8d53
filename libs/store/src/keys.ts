import { InvalidKeyError } from "./errors.ts";

/** Longest accepted key in bytes (S3's own limit is 1024; we keep headroom for prefixes). */
export const MAX_KEY_BYTES = 900;

/** First path segment reserved for the store's own bookkeeping (temp files, sidecars). */
export const RESERVED_SEGMENT_PREFIX = ".abl";

// Letters, digits and a few punctuation characters that are safe in file names and S3 URLs.
const SEGMENT_CHARS = /^[A-Za-z0-9._=+@,-]+$/;

/**
 * Checks that `key` is a safe relative object key: `/`-separated segments of
 * `[A-Za-z0-9._=+@,-]`, no empty, `.` or `..` segment, no leading `/`, at most
 * {@link MAX_KEY_BYTES} bytes, and not under the reserved `.abl*` first segment. Throws
 * `InvalidKeyError` naming the problem. A valid key can never escape a local store's root.
 */
export function validateKey(key: string): string {
  if (typeof key !== "string") throw new InvalidKeyError(String(key), "key must be a string");
  if (key.length === 0) throw new InvalidKeyError(key, "key is empty");
  const bytes = Buffer.byteLength(key);
  if (bytes > MAX_KEY_BYTES) {
    throw new InvalidKeyError(key, `key is ${bytes} bytes, over the ${MAX_KEY_BYTES}-byte limit`);
  }
  if (key.startsWith("/")) throw new InvalidKeyError(key, "key must be relative (no leading '/')");
  if (key.endsWith("/")) throw new InvalidKeyError(key, "key must not end with '/'");
  const segments = key.split("/");
  for (const [i, seg] of segments.entries()) {
    if (seg === "") throw new InvalidKeyError(key, `empty path segment at position ${i}`);
    if (seg === "." || seg === "..") {
      throw new InvalidKeyError(key, `path segment '${seg}' is not allowed (path escape)`);
    }
    if (!SEGMENT_CHARS.test(seg)) {
      throw new InvalidKeyError(
        key,
        `segment ${JSON.stringify(seg)} has characters outside [A-Za-z0-9._=+@,-]`,
      );
    }
  }
  if (segments[0]!.startsWith(RESERVED_SEGMENT_PREFIX)) {
    throw new InvalidKeyError(
      key,
      `first segment starting with '${RESERVED_SEGMENT_PREFIX}' is reserved`,
    );
  }
  return key;
}

/**
 * Checks a list prefix: `""` or a string that would be a valid key prefix (it may end with `/`).
 */
export function validatePrefix(prefix: string): string {
  if (prefix === "") return prefix;
  const trimmed = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
  try {
    validateKey(trimmed);
  } catch (err) {
    throw new InvalidKeyError(prefix, `invalid list prefix: ${(err as Error).message}`);
  }
  return prefix;
}

/** Joins key parts with `/` and validates the result. */
export function joinKey(...parts: string[]): string {
  return validateKey(parts.filter((p) => p !== "").join("/"));
}
