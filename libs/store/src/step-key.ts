import { createHash } from "node:crypto";
import { StoreError } from "./errors.ts";

/**
 * Canonical JSON: object keys sorted by code unit, `undefined` members dropped, no whitespace,
 * numbers in JavaScript's shortest round-trip form with `-0` written as `0`. Non-finite numbers,
 * bigints, functions, symbols and cycles are rejected, since they have no stable JSON form.
 * `Date` becomes its ISO string, `Uint8Array` a lower-case hex string.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, "$", new Set());
}

function encode(value: unknown, path: string, seen: Set<object>): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "string":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) {
        throw new StoreError(`canonical JSON: ${path} is ${value}, which has no JSON form`);
      }
      return Object.is(value, -0) ? "0" : JSON.stringify(value);
    case "object":
      break;
    default:
      throw new StoreError(`canonical JSON: ${path} is a ${typeof value}, which has no JSON form`);
  }
  const obj = value as object;
  if (obj instanceof Date) return JSON.stringify(obj.toISOString());
  if (obj instanceof Uint8Array) return JSON.stringify(Buffer.from(obj).toString("hex"));
  if (seen.has(obj)) throw new StoreError(`canonical JSON: ${path} is a cycle`);
  seen.add(obj);
  try {
    if (Array.isArray(obj)) {
      return `[${obj.map((v, i) => (v === undefined ? "null" : encode(v, `${path}[${i}]`, seen))).join(",")}]`;
    }
    const keys = Object.keys(obj).sort();
    const parts: string[] = [];
    for (const k of keys) {
      const v = (obj as Record<string, unknown>)[k];
      if (v === undefined) continue;
      parts.push(`${JSON.stringify(k)}:${encode(v, `${path}.${k}`, seen)}`);
    }
    return `{${parts.join(",")}}`;
  } finally {
    seen.delete(obj);
  }
}

/** Lower-case hex sha256 of a string or bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * The cache key of a pipeline step: sha256 hex of the canonical JSON of `{kind, params}`. Put
 * everything the output depends on into `params` (code version, input artifact digests, ...).
 */
export function stepKey(kind: string, params: unknown): string {
  if (typeof kind !== "string" || kind.length === 0) {
    throw new StoreError("stepKey: kind must be a non-empty string");
  }
  return sha256Hex(canonicalJson({ kind, params }));
}
