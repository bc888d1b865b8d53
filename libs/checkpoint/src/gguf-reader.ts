/**
 * GGUF container parsing (versions 2 and 3): header, metadata key/values of every value type,
 * tensor infos and the aligned data section. Only the header is read into memory; tensor bytes
 * are read one tensor at a time by `readGgufTensorBytes`.
 *
 * Layout (all little-endian): magic "GGUF", u32 version, u64 tensor count, u64 metadata count,
 * the metadata pairs, the tensor infos (name, u32 n_dims, u64 dims[n_dims] fastest-first, u32
 * ggml type, u64 offset relative to the data section), then padding to `general.alignment`
 * (default 32) and the data section.
 */
import { type FileHandle, open } from "node:fs/promises";
import { GGUF_SUPPORTED_TYPES, type GgmlTypeInfo, ggmlTypeInfo } from "./gguf-ggml-types.ts";

/** "GGUF" read as a little-endian u32. */
const GGUF_MAGIC = 0x46554747;
/** The first bytes read when parsing a header; doubled until the whole header fits. */
const GGUF_INITIAL_HEADER_READ_BYTES = 1 << 20;
/**
 * Largest header (metadata + tensor infos) accepted. Vocabularies of 256k tokens with merges
 * take tens of MiB; anything far beyond that is a corrupt count, not a model.
 */
export const GGUF_MAX_HEADER_BYTES = 512 * 1024 * 1024;
/** Most tensors accepted: the largest released models have a few thousand. */
export const GGUF_MAX_TENSOR_COUNT = 1_000_000;
/** Most metadata pairs accepted: real files have tens to hundreds. */
export const GGUF_MAX_METADATA_COUNT = 1_000_000;
/** Longest array value accepted (token lists and merges of the biggest vocabularies fit easily). */
export const GGUF_MAX_ARRAY_LENGTH = 16 * 1024 * 1024;
/** Longest string accepted (chat templates are the longest strings, at tens of KiB). */
export const GGUF_MAX_STRING_BYTES = 16 * 1024 * 1024;
/** Deepest nesting of arrays inside arrays: the format allows it, real files use one level. */
export const GGUF_MAX_ARRAY_DEPTH = 8;
/** ggml's GGML_MAX_DIMS: a tensor has at most four dimensions. */
export const GGUF_MAX_DIMS = 4;
/** Default alignment of the data section and of each tensor's offset. */
const GGUF_DEFAULT_ALIGNMENT = 32;

/** A GGUF file that cannot be read: bad magic, unsupported version, corrupt counts or offsets. */
export class GgufFormatError extends Error {
  override readonly name = "GgufFormatError";
}

/** A tensor whose ggml type cannot be dequantized by this package. */
export class GgufUnsupportedTypeError extends Error {
  override readonly name = "GgufUnsupportedTypeError";
}

/** A metadata value: numbers (64-bit integers beyond 2^53 stay bigint), booleans, strings, arrays. */
export type GgufValue = number | bigint | boolean | string | readonly GgufValue[];

/** One tensor as described in the header. `dims` are in ggml order (fastest-varying first). */
export interface GgufTensorInfo {
  readonly name: string;
  readonly dims: readonly number[];
  readonly type: GgmlTypeInfo;
  /** Element count (product of dims). */
  readonly elements: number;
  /** Absolute byte offset of the tensor's data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

/** A parsed GGUF header. */
export interface GgufHeader {
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** Absolute byte offset of the data section. */
  readonly dataOffset: number;
  readonly fileSize: number;
}

/** Thrown inside the parser when the buffer ends before the header does. */
class NeedMoreBytes extends Error {}

const VALUE_TYPES = {
  0: "u8",
  1: "i8",
  2: "u16",
  3: "i16",
  4: "u32",
  5: "i32",
  6: "f32",
  7: "bool",
  8: "string",
  9: "array",
  10: "u64",
  11: "i64",
  12: "f64",
} as const;

class Cursor {
  pos = 0;
  private readonly view: DataView;
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });
  constructor(
    private readonly bytes: Uint8Array,
    /** True when `bytes` ends where the file ends (running out is then a truncated file). */
    private readonly atEof: boolean,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(n: number, what: string): void {
    if (this.pos + n > this.bytes.byteLength) {
      if (this.atEof) {
        throw new GgufFormatError(
          `file truncated: ${what} needs ${n} bytes at offset ${this.pos}, file has ${this.bytes.byteLength}`,
        );
      }
      throw new NeedMoreBytes();
    }
  }
  u8(): number {
    this.need(1, "u8");
    return this.view.getUint8(this.pos++);
  }
  u32(): number {
    this.need(4, "u32");
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(what: string): number {
    const v = this.u64Big();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new GgufFormatError(`${what} ${v} at offset ${this.pos - 8} is beyond 2^53`);
    }
    return Number(v);
  }
  u64Big(): bigint {
    this.need(8, "u64");
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  string(what: string): string {
    const len = this.u64(`${what} length`);
    if (len > GGUF_MAX_STRING_BYTES) {
      throw new GgufFormatError(
        `${what} length ${len} at offset ${this.pos - 8} exceeds the ${GGUF_MAX_STRING_BYTES}-byte limit`,
      );
    }
    this.need(len, what);
    const s = this.bytes.subarray(this.pos, this.pos + len);
    this.pos += len;
    try {
      return this.decoder.decode(s);
    } catch (cause) {
      throw new GgufFormatError(`${what} at offset ${this.pos - len} is not valid UTF-8`, {
        cause,
      });
    }
  }
  value(type: number, key: string, depth: number): GgufValue {
    const v = this.view;
    const p = this.pos;
    switch (VALUE_TYPES[type as keyof typeof VALUE_TYPES]) {
      case "u8":
        this.need(1, key);
        this.pos += 1;
        return v.getUint8(p);
      case "i8":
        this.need(1, key);
        this.pos += 1;
        return v.getInt8(p);
      case "u16":
        this.need(2, key);
        this.pos += 2;
        return v.getUint16(p, true);
      case "i16":
        this.need(2, key);
        this.pos += 2;
        return v.getInt16(p, true);
      case "u32":
        this.need(4, key);
        this.pos += 4;
        return v.getUint32(p, true);
      case "i32":
        this.need(4, key);
        this.pos += 4;
        return v.getInt32(p, true);
      case "f32":
        this.need(4, key);
        this.pos += 4;
        return v.getFloat32(p, true);
      case "bool": {
        this.need(1, key);
        this.pos += 1;
        const b = v.getUint8(p);
        if (b > 1)
          throw new GgufFormatError(
            `metadata "${key}": bool byte ${b} at offset ${p} is not 0 or 1`,
          );
        return b === 1;
      }
      case "string":
        return this.string(`metadata "${key}" string`);
      case "u64": {
        this.need(8, key);
        this.pos += 8;
        const b = v.getBigUint64(p, true);
        return b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
      }
      case "i64": {
        this.need(8, key);
        this.pos += 8;
        const b = v.getBigInt64(p, true);
        return b <= BigInt(Number.MAX_SAFE_INTEGER) && b >= BigInt(Number.MIN_SAFE_INTEGER)
          ? Number(b)
          : b;
      }
      case "f64":
        this.need(8, key);
        this.pos += 8;
        return v.getFloat64(p, true);
      case "array": {
        if (depth >= GGUF_MAX_ARRAY_DEPTH) {
          throw new GgufFormatError(
            `metadata "${key}": arrays nested deeper than ${GGUF_MAX_ARRAY_DEPTH}`,
          );
        }
        const itemType = this.u32();
        const n = this.u64(`metadata "${key}" array length`);
        if (n > GGUF_MAX_ARRAY_LENGTH) {
          throw new GgufFormatError(
            `metadata "${key}": array length ${n} exceeds the limit of ${GGUF_MAX_ARRAY_LENGTH} items`,
          );
        }
        const out: GgufValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(itemType, key, depth + 1);
        return out;
      }
      default:
        throw new GgufFormatError(
          `metadata "${key}": unknown value type ${type} at offset ${p - 4}`,
        );
    }
  }
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** Parses a complete GGUF header from `bytes`; throws NeedMoreBytes when they end early. */
function parseHeader(bytes: Uint8Array, fileSize: number): GgufHeader {
  const c = new Cursor(bytes, bytes.byteLength >= fileSize);
  const magic = c.u32();
  if (magic !== GGUF_MAGIC) {
    throw new GgufFormatError(
      `bad magic 0x${magic.toString(16).padStart(8, "0")}: not a GGUF file (expected 0x${GGUF_MAGIC.toString(16)}, "GGUF")`,
    );
  }
  const version = c.u32();
  // Big-endian files (gguf-py can write them) keep the magic as is but swap everything after it.
  if (version === 0x02000000 || version === 0x03000000) {
    throw new GgufFormatError(
      `big-endian GGUF files are not supported (version field 0x${version.toString(16)})`,
    );
  }
  if (version !== 2 && version !== 3) {
    throw new GgufFormatError(`GGUF version ${version} is not supported (supported: 2, 3)`);
  }
  const tensorCount = c.u64("tensor count");
  if (tensorCount > GGUF_MAX_TENSOR_COUNT) {
    throw new GgufFormatError(
      `tensor count ${tensorCount} exceeds the limit of ${GGUF_MAX_TENSOR_COUNT}`,
    );
  }
  const kvCount = c.u64("metadata count");
  if (kvCount > GGUF_MAX_METADATA_COUNT) {
    throw new GgufFormatError(
      `metadata count ${kvCount} exceeds the limit of ${GGUF_MAX_METADATA_COUNT}`,
    );
  }
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`metadata key #${i}`);
    const type = c.u32();
    if (metadata.has(key)) throw new GgufFormatError(`metadata key "${key}" appears twice`);
    metadata.set(key, c.value(type, key, 0));
  }
  const alignmentValue = metadata.get("general.alignment") ?? GGUF_DEFAULT_ALIGNMENT;
  if (
    typeof alignmentValue !== "number" ||
    !Number.isInteger(alignmentValue) ||
    alignmentValue < 1
  ) {
    throw new GgufFormatError(
      `general.alignment ${String(alignmentValue)} is not a positive integer`,
    );
  }
  const alignment = alignmentValue;
  const infos: {
    name: string;
    dims: number[];
    type: GgmlTypeInfo;
    rel: number;
    elements: number;
  }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = c.string(`tensor #${i} name`);
    const nDims = c.u32();
    if (nDims < 1 || nDims > GGUF_MAX_DIMS) {
      throw new GgufFormatError(
        `tensor "${name}": ${nDims} dimensions (must be 1 to ${GGUF_MAX_DIMS})`,
      );
    }
    const dims: number[] = [];
    let elements = 1;
    for (let d = 0; d < nDims; d++) {
      const n = c.u64(`tensor "${name}" dimension ${d}`);
      dims.push(n);
      elements *= n;
    }
    if (!Number.isSafeInteger(elements)) {
      throw new GgufFormatError(
        `tensor "${name}": shape [${dims.join(", ")}] has too many elements`,
      );
    }
    const typeId = c.u32();
    const type = ggmlTypeInfo(typeId);
    if (!type) {
      throw new GgufFormatError(
        `tensor "${name}": unknown quantization type ${typeId} (supported: ${GGUF_SUPPORTED_TYPES.join(", ")})`,
      );
    }
    const rel = c.u64(`tensor "${name}" offset`);
    if (rel % alignment !== 0) {
      throw new GgufFormatError(
        `tensor "${name}": offset ${rel} is not a multiple of the alignment ${alignment}`,
      );
    }
    if ((dims[0] ?? 0) % type.blockElements !== 0) {
      throw new GgufFormatError(
        `tensor "${name}": row length ${dims[0]} is not a multiple of the ${type.name} block size ${type.blockElements}`,
      );
    }
    if (names.has(name)) throw new GgufFormatError(`tensor "${name}" appears twice`);
    names.add(name);
    infos.push({ name, dims, type, rel, elements });
  }
  const dataOffset = alignUp(c.pos, alignment);
  const tensors: GgufTensorInfo[] = infos.map((t) => {
    const byteLength = (t.elements / t.type.blockElements) * t.type.blockBytes;
    const offset = dataOffset + t.rel;
    if (offset + byteLength > fileSize) {
      throw new GgufFormatError(
        `tensor "${t.name}": data out of bounds: bytes ${offset}..${offset + byteLength} but the file has ${fileSize} bytes`,
      );
    }
    return { name: t.name, dims: t.dims, type: t.type, elements: t.elements, offset, byteLength };
  });
  return { version, metadata, tensors, alignment, dataOffset, fileSize };
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buf : buf.subarray(0, done);
}

/** Reads and validates the header of an open GGUF file, reading no more of it than needed. */
export async function readGgufHeaderFrom(fh: FileHandle): Promise<GgufHeader> {
  const { size } = await fh.stat();
  let want = Math.min(size, GGUF_INITIAL_HEADER_READ_BYTES);
  for (;;) {
    const bytes = await readAt(fh, 0, want);
    try {
      return parseHeader(bytes, size);
    } catch (err) {
      if (!(err instanceof NeedMoreBytes)) throw err;
      if (want >= GGUF_MAX_HEADER_BYTES) {
        throw new GgufFormatError(`header is larger than the ${GGUF_MAX_HEADER_BYTES}-byte limit`);
      }
      want = Math.min(size, want * 2, GGUF_MAX_HEADER_BYTES);
    }
  }
}

/** Reads and validates the header of the GGUF file at `path`. */
export async function readGgufHeader(path: string): Promise<GgufHeader> {
  const fh = await open(path, "r");
  try {
    return await readGgufHeaderFrom(fh);
  } finally {
    await fh.close();
  }
}

/** Reads one tensor's raw (still quantized) bytes. */
export async function readGgufTensorBytes(
  fh: FileHandle,
  tensor: GgufTensorInfo,
): Promise<Uint8Array> {
  const bytes = await readAt(fh, tensor.offset, tensor.byteLength);
  if (bytes.byteLength !== tensor.byteLength) {
    throw new GgufFormatError(
      `tensor "${tensor.name}": read ${bytes.byteLength} of ${tensor.byteLength} bytes at offset ${tensor.offset} (file shrank?)`,
    );
  }
  return bytes;
}

/** Typed access to one metadata value; throws GgufFormatError naming the key when it is missing or of another kind. */
export function ggufNumber(header: GgufHeader, key: string): number {
  const v = header.metadata.get(key);
  if (typeof v !== "number") {
    throw new GgufFormatError(
      v === undefined
        ? `metadata "${key}" is missing`
        : `metadata "${key}" is ${typeof v}, expected a number`,
    );
  }
  return v;
}

/** Like `ggufNumber`, but undefined when the key is absent. */
export function ggufOptionalNumber(header: GgufHeader, key: string): number | undefined {
  return header.metadata.has(key) ? ggufNumber(header, key) : undefined;
}

/** A string metadata value, or undefined when absent; throws when present with another kind. */
export function ggufOptionalString(header: GgufHeader, key: string): string | undefined {
  const v = header.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== "string")
    throw new GgufFormatError(`metadata "${key}" is ${typeof v}, expected a string`);
  return v;
}

/** Throws GgufUnsupportedTypeError when `tensor` has a type that cannot be dequantized. */
export function assertGgufTensorSupported(tensor: GgufTensorInfo): void {
  if (!tensor.type.supported) {
    throw new GgufUnsupportedTypeError(
      `tensor "${tensor.name}" has quantization type ${tensor.type.name} (${tensor.type.id}), which is not supported (supported: ${GGUF_SUPPORTED_TYPES.join(", ")})`,
    );
  }
}
