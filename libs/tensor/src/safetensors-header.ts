import { DTYPE_SIZES, type DType, isDType } from "./dtype.ts";
import { SafetensorsError } from "./errors.ts";

/**
 * Largest JSON header accepted. The reference Rust implementation caps it at 100 MB; a real header
 * with 100k tensors is about 10 MB, so anything bigger is corrupt or hostile.
 */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Most tensors in one file. The biggest MoE shards hold ~20k; 1M bounds parse time and memory. */
export const MAX_TENSORS = 1_000_000;
/** Highest rank accepted. Model weights are rank ≤ 4; 8 leaves room and bounds shape products. */
export const MAX_RANK = 8;
/** Longest tensor name in UTF-16 code units. HF names are < 200 characters. */
export const MAX_NAME_LENGTH = 1024;
/** Size of the little-endian u64 header-length prefix. */
export const PREFIX_BYTES = 8;

/** One tensor's entry in a safetensors header, with offsets made absolute within the file. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Byte range relative to the start of the data section, as stored in the header. */
  readonly dataOffsets: readonly [number, number];
  /** Absolute byte offset of the first byte in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

/** A parsed and fully validated safetensors header. */
export interface SafetensorsHeader {
  /** Length of the JSON header (without the 8-byte prefix). */
  readonly headerLength: number;
  /** Absolute offset of the data section (8 + headerLength). */
  readonly dataStart: number;
  /** Tensors in data order (ascending offsets). */
  readonly tensors: readonly TensorInfo[];
  readonly byName: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * Reads the header length from the 8-byte prefix and checks it against {@link MAX_HEADER_BYTES}
 * and the file size.
 */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, source?: string): number {
  const src = source === undefined ? {} : { source };
  if (fileSize < PREFIX_BYTES) {
    throw new SafetensorsError(
      `file is ${fileSize} bytes, shorter than the ${PREFIX_BYTES}-byte header prefix`,
      src,
    );
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, PREFIX_BYTES);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`,
      src,
    );
  }
  const len = Number(n);
  if (PREFIX_BYTES + len > fileSize) {
    throw new SafetensorsError(
      `header length ${len} runs beyond the end of the ${fileSize}-byte file`,
      src,
    );
  }
  if (len < 2)
    throw new SafetensorsError(`header length ${len} is too short for a JSON object`, src);
  return len;
}

function isSafeCount(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/**
 * Parses and validates the JSON header of a file of `fileSize` bytes: every entry well formed,
 * byte length = dtype size × element count, offsets contiguous from 0, non-overlapping and ending
 * exactly at the end of the file.
 */
export function parseSafetensorsHeader(
  json: Uint8Array,
  fileSize: number,
  source?: string,
): SafetensorsHeader {
  const src = source === undefined ? {} : { source };
  const fail = (msg: string, cause?: unknown): never => {
    throw new SafetensorsError(msg, cause === undefined ? src : { ...src, cause });
  };
  const headerLength = json.byteLength;
  const dataStart = PREFIX_BYTES + headerLength;
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(json));
  } catch (err) {
    fail(`header is not valid UTF-8 JSON`, err);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    fail("header is not a JSON object");
  const obj = raw as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length > MAX_TENSORS + 1)
    fail(`header lists ${keys.length} entries, over the ${MAX_TENSORS} limit`);
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const name of keys) {
    const entry = obj[name];
    if (name === "__metadata__") {
      if (typeof entry !== "object" || entry === null || Array.isArray(entry))
        fail("__metadata__ is not an object");
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`__metadata__["${k}"] is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (name.length === 0) fail("a tensor has an empty name");
    if (name.length > MAX_NAME_LENGTH) {
      fail(`tensor name of ${name.length} characters exceeds the ${MAX_NAME_LENGTH} limit`);
    }
    if (typeof entry !== "object" || entry === null)
      fail(`tensor "${name}": entry is not an object`);
    const e = entry as Record<string, unknown>;
    const dtype = e.dtype;
    if (typeof dtype !== "string" || !isDType(dtype))
      fail(`tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`);
    const shape = e.shape;
    if (!Array.isArray(shape)) fail(`tensor "${name}": shape is not an array`);
    const dims = shape as unknown[];
    if (dims.length > MAX_RANK)
      fail(`tensor "${name}": rank ${dims.length} exceeds the ${MAX_RANK} limit`);
    let count = 1;
    for (const d of dims) {
      if (!isSafeCount(d))
        fail(
          `tensor "${name}": shape ${JSON.stringify(shape)} has a non-integer or negative dimension`,
        );
      count *= d as number;
      if (!Number.isSafeInteger(count))
        fail(`tensor "${name}": shape ${JSON.stringify(shape)} overflows`);
    }
    const offs = e.data_offsets;
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !isSafeCount(offs[0]) ||
      !isSafeCount(offs[1])
    ) {
      fail(
        `tensor "${name}": data_offsets ${JSON.stringify(offs)} is not a pair of non-negative integers`,
      );
    }
    const [begin, end] = offs as [number, number];
    if (end < begin)
      fail(`tensor "${name}": data_offsets [${begin}, ${end}] end before they begin`);
    const expected = count * DTYPE_SIZES[dtype as DType];
    if (end - begin !== expected) {
      fail(
        `tensor "${name}": ${end - begin} bytes at [${begin}, ${end}] but ${dtype} × ${JSON.stringify(shape)} needs ${expected}`,
      );
    }
    tensors.push({
      name,
      dtype: dtype as DType,
      shape: dims as number[],
      dataOffsets: [begin, end],
      offset: dataStart + begin,
      byteLength: end - begin,
    });
  }
  tensors.sort(
    (a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1],
  );
  let cursor = 0;
  for (const t of tensors) {
    const [b, e] = t.dataOffsets;
    if (b < cursor)
      fail(
        `tensor "${t.name}": data_offsets [${b}, ${e}] overlap the previous tensor, which ends at ${cursor}`,
      );
    if (b > cursor)
      fail(`tensor "${t.name}": data_offsets [${b}, ${e}] leave a gap after byte ${cursor}`);
    cursor = e;
  }
  const dataSize = fileSize - dataStart;
  if (cursor !== dataSize) {
    fail(
      cursor > dataSize
        ? `tensors need ${cursor} data bytes but the file holds ${dataSize} (truncated?)`
        : `file has ${dataSize - cursor} bytes after the last tensor`,
    );
  }
  return {
    headerLength,
    dataStart,
    tensors,
    byName: new Map(tensors.map((t) => [t.name, t])),
    metadata,
  };
}

/** Number of elements of a shape (1 for a scalar). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
