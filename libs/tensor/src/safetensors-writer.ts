import { type ByteSink, createFileSink } from "./byte-sink.ts";
import { type DType, dtypeSize, encodeFromF32, isFloatDType } from "./dtype.ts";
import { SafetensorsError } from "./errors.ts";
import { elementCount, MAX_HEADER_BYTES, PREFIX_BYTES } from "./safetensors-header.ts";

/** Name, dtype and shape of a tensor to write; data comes later, in this order. */
export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/** The encoded prefix + JSON header of a file, and where each tensor's bytes go. */
export interface EncodedHeader {
  /** 8-byte length prefix followed by the JSON header, padded with spaces to a multiple of 8. */
  readonly bytes: Uint8Array;
  /** Per tensor, in spec order: byte length. */
  readonly byteLengths: readonly number[];
  /** Total file size. */
  readonly fileSize: number;
}

/**
 * Builds the header for tensors laid out back to back in the given order. The JSON is padded to
 * 8 bytes so that every tensor stays aligned to its element size, as the reference writer does.
 */
export function encodeSafetensorsHeader(
  specs: readonly TensorSpec[],
  metadata?: Readonly<Record<string, string>>,
): EncodedHeader {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const byteLengths: number[] = [];
  for (const s of specs) {
    if (Object.hasOwn(header, s.name))
      throw new SafetensorsError(`tensor "${s.name}" is listed twice`);
    const n = elementCount(s.shape) * dtypeSize(s.dtype);
    header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [offset, offset + n] };
    byteLengths.push(n);
    offset += n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded > MAX_HEADER_BYTES) {
    throw new SafetensorsError(
      `header of ${padded} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`,
    );
  }
  const bytes = new Uint8Array(PREFIX_BYTES + padded).fill(0x20);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, PREFIX_BYTES);
  return { bytes, byteLengths, fileSize: PREFIX_BYTES + padded + offset };
}

/**
 * Writes one safetensors file to a sink: header first, then each tensor's bytes in spec order,
 * in as many chunks as the caller likes. `finish` checks every byte arrived and commits the sink.
 */
export interface SafetensorsWriter {
  readonly header: EncodedHeader;
  /** File position of the next data byte: where the next `write` or `claim` places its bytes. */
  readonly position: number;
  /** Appends bytes of the current tensor (moves to the next when one is complete). */
  write(chunk: Uint8Array, signal?: AbortSignal): Promise<void>;
  /**
   * Present when the sink writes at positions: claims the next `length` data bytes (as `write`
   * would append them) and returns the function that writes them there, once. Claimed writes
   * may run concurrently; `finish` fails while one is unfinished.
   */
  claim?(length: number): (chunk: Uint8Array, signal?: AbortSignal) => Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

/** Starts a {@link SafetensorsWriter} on `sink`; the header is written immediately. */
export async function createSafetensorsWriter(
  sink: ByteSink,
  specs: readonly TensorSpec[],
  metadata?: Readonly<Record<string, string>>,
  signal?: AbortSignal,
): Promise<SafetensorsWriter> {
  const header = encodeSafetensorsHeader(specs, metadata);
  try {
    await sink.write(header.bytes, signal);
  } catch (err) {
    await sink.abort();
    throw err;
  }
  const expectedData = header.fileSize - header.bytes.byteLength;
  let data = 0;
  let open = 0;
  const room = (n: number) => {
    if (data + n > expectedData) {
      throw new SafetensorsError(
        `writing ${n} more bytes would exceed the ${expectedData} data bytes the header declares`,
        { source: sink.name },
      );
    }
  };
  const writeAt = sink.writeAt?.bind(sink);
  return {
    header,
    get position() {
      return header.bytes.byteLength + data;
    },
    async write(chunk, sig) {
      room(chunk.byteLength);
      await sink.write(chunk, sig);
      data += chunk.byteLength;
    },
    ...(writeAt && {
      claim(length: number) {
        room(length);
        const position = header.bytes.byteLength + data;
        data += length;
        open++;
        let used = false;
        return async (chunk: Uint8Array, sig?: AbortSignal) => {
          if (used || chunk.byteLength !== length)
            throw new SafetensorsError(
              `a claim of ${length} bytes at ${position} was written ${used ? "twice" : `with ${chunk.byteLength} bytes`}`,
              { source: sink.name },
            );
          used = true;
          await writeAt(chunk, position, sig);
          open--;
        };
      },
    }),
    async finish() {
      if (open > 0) {
        await sink.abort();
        throw new SafetensorsError(`${open} claimed writes did not finish`, { source: sink.name });
      }
      if (data !== expectedData) {
        await sink.abort();
        throw new SafetensorsError(`only ${data} of ${expectedData} data bytes were written`, {
          source: sink.name,
        });
      }
      await sink.commit();
    },
    abort: () => sink.abort(),
  };
}

/** A tensor for {@link writeSafetensors}: float32 data (encoded to `dtype`) or raw bytes. */
export interface TensorInput {
  readonly shape: readonly number[];
  /** Stored dtype; defaults to F32 for Float32Array data. Required for raw bytes. */
  readonly dtype?: DType;
  readonly data: Float32Array | Uint8Array;
}

/**
 * Writes a small safetensors file in one go (fixtures, directions), atomically via temp+rename.
 * Float32Array data is rounded once to the requested float dtype.
 */
export async function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, TensorInput>>,
  metadata?: Readonly<Record<string, string>>,
  signal?: AbortSignal,
): Promise<void> {
  const entries = Object.entries(tensors);
  const specs: TensorSpec[] = entries.map(([name, t]) => {
    const dtype = t.dtype ?? (t.data instanceof Float32Array ? "F32" : undefined);
    if (!dtype) throw new SafetensorsError(`tensor "${name}": raw bytes need an explicit dtype`);
    return { name, dtype, shape: t.shape };
  });
  const encoded: Uint8Array[] = entries.map(([name, t], i) => {
    const spec = specs[i]!;
    const n = elementCount(spec.shape);
    const bytesNeeded = n * dtypeSize(spec.dtype);
    if (t.data instanceof Float32Array) {
      if (t.data.length !== n) {
        throw new SafetensorsError(
          `tensor "${name}": ${t.data.length} values for shape ${JSON.stringify(spec.shape)}`,
        );
      }
      if (!isFloatDType(spec.dtype))
        throw new SafetensorsError(`tensor "${name}": cannot encode float32 as ${spec.dtype}`);
      const out = new Uint8Array(bytesNeeded);
      encodeFromF32(spec.dtype, t.data, out, n);
      return out;
    }
    if (t.data.byteLength !== bytesNeeded) {
      throw new SafetensorsError(
        `tensor "${name}": ${t.data.byteLength} bytes, shape and dtype need ${bytesNeeded}`,
      );
    }
    return t.data;
  });
  const writer = await createSafetensorsWriter(await createFileSink(path), specs, metadata, signal);
  try {
    for (const b of encoded) await writer.write(b, signal);
  } catch (err) {
    await writer.abort();
    throw err;
  }
  await writer.finish();
}
