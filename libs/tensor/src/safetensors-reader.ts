import type { ByteSource } from "./byte-source.ts";
import { openFileSource } from "./byte-source.ts";
import { decodeToF32, isFloatDType } from "./dtype.ts";
import { DTypeError, SafetensorsError } from "./errors.ts";
import {
  elementCount,
  PREFIX_BYTES,
  parseHeaderLength,
  parseSafetensorsHeader,
  type SafetensorsHeader,
  type TensorInfo,
} from "./safetensors-header.ts";

/**
 * Reads and validates the header of a safetensors source with two capped range reads (prefix, then
 * JSON); tensor data is not touched.
 */
export async function readSafetensorsHeader(
  source: ByteSource,
  signal?: AbortSignal,
): Promise<SafetensorsHeader> {
  const prefix = new Uint8Array(PREFIX_BYTES);
  if (source.size < PREFIX_BYTES) {
    throw new SafetensorsError(
      `file is ${source.size} bytes, shorter than the ${PREFIX_BYTES}-byte header prefix`,
      {
        source: source.name,
      },
    );
  }
  await source.read(0, PREFIX_BYTES, prefix, signal);
  const len = parseHeaderLength(prefix, source.size, source.name);
  const json = new Uint8Array(len);
  await source.read(PREFIX_BYTES, len, json, signal);
  return parseSafetensorsHeader(json, source.size, source.name);
}

/** A decoded float tensor. */
export interface DecodedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** An open safetensors file: header plus on-demand tensor reads. */
export interface SafetensorsFile {
  readonly header: SafetensorsHeader;
  /** Names in data order. */
  readonly names: readonly string[];
  /** Header entry of `name`; throws when absent. */
  info(name: string): TensorInfo;
  /** Raw little-endian bytes of `name`, read with one range read (into `into` when given). */
  bytes(name: string, into?: Uint8Array, signal?: AbortSignal): Promise<Uint8Array>;
  /**
   * `name` decoded to float32 (F32/F16/BF16 only). An F32 tensor of a source with `view` (bytes
   * in memory) whose data is 4-byte aligned comes back as a view of the source's memory, not a
   * copy; treat the result as read-only.
   */
  tensor(name: string, signal?: AbortSignal): Promise<Float32Array>;
  /** `name` decoded to float32 with its shape. */
  decoded(name: string, signal?: AbortSignal): Promise<DecodedTensor>;
  close(): Promise<void>;
}

/** Opens a safetensors {@link ByteSource}, validating its header. The file owns the source. */
export async function openSafetensors(
  source: ByteSource,
  signal?: AbortSignal,
): Promise<SafetensorsFile> {
  let header: SafetensorsHeader;
  try {
    header = await readSafetensorsHeader(source, signal);
  } catch (err) {
    await source.close();
    throw err;
  }
  const info = (name: string): TensorInfo => {
    const t = header.byName.get(name);
    if (!t) throw new SafetensorsError(`no tensor named "${name}"`, { source: source.name });
    return t;
  };
  const bytes = async (name: string, into?: Uint8Array, sig?: AbortSignal): Promise<Uint8Array> => {
    const t = info(name);
    const buf = into ? into.subarray(0, t.byteLength) : new Uint8Array(t.byteLength);
    await source.read(t.offset, t.byteLength, buf, sig);
    return buf;
  };
  const tensor = async (name: string, sig?: AbortSignal): Promise<Float32Array> => {
    const t = info(name);
    if (!isFloatDType(t.dtype))
      throw new DTypeError(
        `tensor "${name}" is ${t.dtype}; only F32, F16 and BF16 decode to float32`,
      );
    const n = elementCount(t.shape);
    if (t.dtype === "F32") {
      // Little-endian f32 is already the result: no decode, and no copy when in memory.
      const v = source.view?.(t.offset, t.byteLength);
      if (v && v.byteOffset % 4 === 0) return new Float32Array(v.buffer, v.byteOffset, n);
      const out = new Float32Array(n);
      await bytes(name, new Uint8Array(out.buffer), sig);
      return out;
    }
    const raw = await bytes(name, undefined, sig);
    const out = new Float32Array(n);
    decodeToF32(t.dtype, raw, out);
    return out;
  };
  return {
    header,
    names: header.tensors.map((t) => t.name),
    info,
    bytes,
    tensor,
    async decoded(name, sig) {
      return { name, shape: info(name).shape, data: await tensor(name, sig) };
    },
    close: () => source.close(),
  };
}

/**
 * Opens a local safetensors file: `header`, `names`, and `tensor(name)` → Float32Array. Close it
 * when done. Reads one tensor at a time; the file is never loaded whole.
 */
export async function readSafetensors(
  path: string,
  signal?: AbortSignal,
): Promise<SafetensorsFile> {
  return openSafetensors(await openFileSource(path), signal);
}
