import { type FileHandle, open } from "node:fs/promises";
import { SafetensorsError } from "./errors.ts";

/**
 * Random-access bytes: a local file, an object in a store (range GETs), or memory. Readers use it
 * so that a shard is never loaded whole.
 */
export interface ByteSource {
  /** Human-readable origin for error messages (path or key). */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Fills `into[0 .. length)` with the bytes at `[offset, offset + length)`. Fails when the range
   * is not inside the source.
   */
  read(offset: number, length: number, into: Uint8Array, signal?: AbortSignal): Promise<void>;
  /**
   * The bytes at `[offset, offset + length)` without a copy, for sources already in memory
   * (absent elsewhere). The view shares the source's memory: readers must not write to it.
   */
  view?(offset: number, length: number): Uint8Array;
  close(): Promise<void>;
}

function checkRange(
  name: string,
  size: number,
  offset: number,
  length: number,
  into: Uint8Array,
): void {
  if (offset < 0 || length < 0 || offset + length > size) {
    throw new SafetensorsError(
      `read of ${length} bytes at ${offset} is outside the ${size}-byte source`,
      { source: name },
    );
  }
  if (into.byteLength < length) {
    throw new RangeError(
      `buffer of ${into.byteLength} bytes is smaller than the ${length}-byte read`,
    );
  }
}

/** A {@link ByteSource} over a local file, read with positioned reads. */
export async function openFileSource(path: string): Promise<ByteSource> {
  const fh: FileHandle = await open(path, "r");
  let size: number;
  try {
    size = (await fh.stat()).size;
  } catch (err) {
    await fh.close();
    throw err;
  }
  return {
    name: path,
    size,
    async read(offset, length, into, signal) {
      checkRange(path, size, offset, length, into);
      let done = 0;
      while (done < length) {
        signal?.throwIfAborted();
        const { bytesRead } = await fh.read(into, done, length - done, offset + done);
        if (bytesRead === 0) {
          throw new SafetensorsError(
            `unexpected end of file at byte ${offset + done} (file shrank?)`,
            { source: path },
          );
        }
        done += bytesRead;
      }
    },
    close: () => fh.close(),
  };
}

/**
 * A {@link ByteSource} over bytes already in memory (tests, downloads held in memory). `view`
 * hands out sub-views of `bytes` instead of copies.
 */
export function memorySource(bytes: Uint8Array, name = "<memory>"): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset, length, into) {
      checkRange(name, bytes.byteLength, offset, length, into);
      into.set(bytes.subarray(offset, offset + length));
    },
    view(offset, length) {
      checkRange(name, bytes.byteLength, offset, length, bytes);
      return bytes.subarray(offset, offset + length);
    },
    async close() {},
  };
}
