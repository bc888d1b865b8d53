import { createHash } from "node:crypto";
import { decodeToF32, isFloatDType, memorySource, openSafetensors } from "@abl/tensor";
import { PatchError } from "./errors.ts";

/** Largest direction file read into memory: [1025 layers × 16384 hidden] f32 is 64 MiB. */
export const MAX_DIRECTION_FILE_BYTES = 128 * 1024 * 1024;

/**
 * Unit refusal directions, f64. `rows.length` is 1 (one global direction) or layers + 1 (index 0
 * = embedding output, index L + 1 = output of layer L).
 */
export interface Directions {
  readonly hidden: number;
  readonly rows: readonly Float64Array[];
  /** sha256 of the normalized directions as little-endian f64, for abliteration.json. */
  readonly digest: string;
  /** Where they came from (`file#layer`). */
  readonly source: string;
}

/** Options of {@link parseDirectionFile}. */
export interface DirectionFileOptions {
  /** hidden_size the directions must match. */
  readonly hidden: number;
  /** Pick one row of a `directions` tensor as the global direction. */
  readonly layer?: number;
  /** Name for messages. */
  readonly source?: string;
}

function normalize(v: Float32Array, what: string): Float64Array {
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (!Number.isFinite(x))
      throw new PatchError(`${what} has a non-finite value (${x}) at index ${i}`);
    n += x * x;
  }
  if (n === 0) throw new PatchError(`${what} is all zeros; a direction needs a nonzero length`);
  const inv = 1 / Math.sqrt(n);
  const out = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i]! * inv;
  return out;
}

function digestOf(rows: readonly Float64Array[]): string {
  const h = createHash("sha256");
  for (const r of rows) h.update(new Uint8Array(r.buffer, r.byteOffset, r.byteLength));
  return h.digest("hex");
}

/** Builds {@link Directions} from float32 rows, validating length, finiteness and nonzero norm. */
export function makeDirections(
  rows: readonly Float32Array[],
  hidden: number,
  source: string,
): Directions {
  if (rows.length === 0) throw new PatchError(`${source}: no direction`);
  const unit = rows.map((r, i) => {
    const what = rows.length === 1 ? source : `${source} row ${i}`;
    if (r.length !== hidden)
      throw new PatchError(`${what} has ${r.length} values, but hidden_size is ${hidden}`);
    return normalize(r, what);
  });
  return { hidden, rows: unit, digest: digestOf(unit), source };
}

/**
 * Reads a direction file: safetensors with a `direction` tensor `[hidden]` or a `directions`
 * tensor `[layers + 1, hidden]` (`layer` picks one row), or raw little-endian float32 of exactly
 * `hidden` values. Every direction is normalized here.
 */
export async function parseDirectionFile(
  bytes: Uint8Array,
  options: DirectionFileOptions,
): Promise<Directions> {
  const source = options.source ?? "direction";
  const { hidden } = options;
  if (bytes.byteLength > MAX_DIRECTION_FILE_BYTES) {
    throw new PatchError(
      `${source} is ${bytes.byteLength} bytes, over the ${MAX_DIRECTION_FILE_BYTES}-byte limit`,
    );
  }
  const looksSafetensors = bytes.byteLength >= 10 && bytes[8] === 0x7b; // '{' after the u64 prefix
  if (!looksSafetensors) {
    if (options.layer !== undefined)
      throw new PatchError(
        `${source} is raw float32; #layer needs a safetensors "directions" tensor`,
      );
    if (bytes.byteLength % 4 !== 0)
      throw new PatchError(
        `${source} is ${bytes.byteLength} bytes, not a whole number of float32 values`,
      );
    const v = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(v.buffer).set(bytes);
    return makeDirections([v], hidden, source);
  }
  const file = await openSafetensors(memorySource(bytes, source));
  const pick = file.header.byName.get("directions") ?? file.header.byName.get("direction");
  if (!pick)
    throw new PatchError(
      `${source} has no "direction" or "directions" tensor (found: ${file.names.join(", ")})`,
    );
  if (!isFloatDType(pick.dtype))
    throw new PatchError(`${source}: tensor "${pick.name}" is ${pick.dtype}, not a float type`);
  const raw = await file.bytes(pick.name);
  const data = new Float32Array(pick.shape.reduce((a, b) => a * b, 1));
  decodeToF32(pick.dtype, raw, data);
  if (pick.name === "direction" || pick.shape.length === 1) {
    if (options.layer !== undefined)
      throw new PatchError(
        `${source} holds one direction; #${options.layer} needs a "directions" tensor`,
      );
    return makeDirections([data], hidden, source);
  }
  if (pick.shape.length !== 2)
    throw new PatchError(
      `${source}: "directions" has shape ${JSON.stringify(pick.shape)}, expected [layers+1, hidden]`,
    );
  const [n, h] = pick.shape as [number, number];
  if (h !== hidden)
    throw new PatchError(
      `${source}: "directions" rows have ${h} values, but hidden_size is ${hidden}`,
    );
  const rows = Array.from({ length: n }, (_, i) => data.subarray(i * h, (i + 1) * h));
  if (options.layer !== undefined) {
    const l = options.layer;
    if (!Number.isInteger(l) || l < 0 || l >= n)
      throw new PatchError(`${source}: layer ${l} is out of range 0..${n - 1}`);
    return makeDirections([rows[l]!], hidden, `${source}#${l}`);
  }
  return makeDirections(rows, hidden, source);
}
