import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * A sequential byte destination. `write` must finish with the bytes before it resolves (callers
 * reuse their buffers). `commit` publishes atomically; `abort` leaves nothing behind.
 */
export interface ByteSink {
  readonly name: string;
  write(chunk: Uint8Array, signal?: AbortSignal): Promise<void>;
  /**
   * Random-access sinks (local files) also write `chunk` at byte `position`; such writes may run
   * concurrently with each other (not with `write`). The caller makes the ranges cover the file.
   */
  writeAt?(chunk: Uint8Array, position: number, signal?: AbortSignal): Promise<void>;
  /** Bytes written so far. */
  readonly written: number;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/** Name of the temporary file a sink for `path` writes before the rename. */
export function tempPathFor(path: string): string {
  return join(
    dirname(path),
    `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
}

/**
 * Writes all of `data` at `position` (one write may take fewer bytes than asked), in writes of at
 * most `pieceBytes` when given.
 */
export async function writeFully(
  fh: FileHandle,
  data: Uint8Array,
  position: number,
  options: { pieceBytes?: number; signal?: AbortSignal | undefined } = {},
): Promise<void> {
  const piece = options.pieceBytes ?? data.byteLength;
  for (let done = 0; done < data.byteLength; ) {
    options.signal?.throwIfAborted();
    const { bytesWritten } = await fh.write(
      data,
      done,
      Math.min(piece, data.byteLength - done),
      position + done,
    );
    done += bytesWritten;
  }
}

/**
 * A {@link ByteSink} that writes a temporary file beside `path` and renames it over `path` on
 * commit (after fsync unless `durable` is false), so readers never see a partial file.
 */
export async function createFileSink(
  path: string,
  options: { durable?: boolean } = {},
): Promise<ByteSink> {
  const tmp = tempPathFor(path);
  const fh: FileHandle = await open(tmp, "wx");
  let written = 0;
  let closed = false;
  return {
    name: path,
    get written() {
      return written;
    },
    async write(chunk, signal) {
      signal?.throwIfAborted();
      await writeFully(fh, chunk, written);
      written += chunk.byteLength;
    },
    async commit() {
      if (options.durable !== false) await fh.sync();
      closed = true;
      await fh.close();
      await rename(tmp, path);
    },
    async abort() {
      if (!closed) {
        closed = true;
        await fh.close().catch(() => {});
      }
      await rm(tmp, { force: true });
    },
  };
}
