// Secret redaction for log records. pino's built-in `redact` matches fixed paths only
// (`a.b.password`), while our secrets hide under many names at any depth (`s3.secretKey`,
// `headers.Authorization`, `env.HF_TOKEN`), so records are walked once here instead.

/** Replacement written in place of a secret value. */
export const REDACTED = "[redacted]";

/** Keys whose value is always a secret, compared case-insensitively. */
const SECRET_KEY =
  /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|hf_token|api_key|apikey)$|(secretkey|secret_key|password|passwd|token|secret)$/i;

/** Secrets that show up inside free text: bearer credentials and Hugging Face tokens. */
const SECRET_TEXT = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}|\bhf_[A-Za-z0-9]{16,}/g;

/**
 * Deepest level walked. Log records are shallow; the cap keeps a pathological (or cyclic through
 * getters) object from costing more than a bounded walk.
 */
const MAX_DEPTH = 8;

/** True when a key names a secret (`authorization`, `*secretKey`, `*password`, `*token`, `HF_TOKEN`). */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/** Masks bearer/basic credentials and Hugging Face tokens inside a string. */
export function redactText(text: string): string {
  return text.replace(SECRET_TEXT, (m) =>
    m.startsWith("hf_") ? REDACTED : `${m.slice(0, m.indexOf(" "))} ${REDACTED}`,
  );
}

/**
 * Returns a copy of `value` with secret-named keys replaced by {@link REDACTED} and secrets in
 * strings masked. Plain objects and arrays are copied; other objects (Errors, Dates, Buffers) are
 * kept as they are so pino's serializers still see them (their output is masked again as text).
 */
export function redactValue(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === "string") return redactText(value);
  if (value === null || typeof value !== "object") return value;
  if (depth >= MAX_DEPTH || seen.has(value)) return value;
  if (Array.isArray(value)) {
    seen.add(value);
    return value.map((v) => redactValue(v, depth + 1, seen));
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  seen.add(value);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = isSecretKey(k) ? REDACTED : redactValue(v, depth + 1, seen);
  }
  return out;
}

const JSON_SECRET_MEMBER =
  /"((?:[^"\\]|\\.)*)":("(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*|true|false|null)/g;

/**
 * Final pass over one serialized JSON line: masks secret-named members whose value is a scalar
 * (they can come back from serializers, e.g. extra properties of an Error) and secrets in text.
 */
export function redactJsonLine(line: string): string {
  const masked = line.replace(JSON_SECRET_MEMBER, (m, key: string) =>
    isSecretKey(key) ? `"${key}":"${REDACTED}"` : m,
  );
  return redactText(masked);
}
