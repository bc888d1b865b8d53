import { createReadStream } from "node:fs";
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { joinKey, type ObjectStore } from "@abl/store";
import { type ByteSource, openFileSource } from "@abl/tensor";
import { CheckpointError } from "./errors.ts";

/** One file of a checkpoint. */
export interface CheckpointFile {
  /** Name relative to the checkpoint root (no folders in HF checkpoints we handle). */
  readonly name: string;
  readonly size: number;
}

/**
 * Where a checkpoint's files live: a local folder or a prefix in an object store. Everything the
 * patcher reads goes through this, so both are streamed the same way.
 */
export interface CheckpointFiles {
  /** `/path/to/dir` or `s3://…/prefix`, for messages. */
  readonly location: string;
  list(signal?: AbortSignal): Promise<CheckpointFile[]>;
  /** Whole small file (config, index, tokenizer); refuses files over `maxBytes`. */
  readBytes(name: string, maxBytes: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** Random access to a big file (shards). */
  open(name: string): Promise<ByteSource>;
  /** Sequential stream of a file (copying files through unchanged). */
  stream(name: string, signal?: AbortSignal): AsyncIterable<Uint8Array>;
}

/** Files a checkpoint folder may hold besides the model that are not part of it. */
const IGNORED = new Set(["manifest.json", "abliteration.json"]);

/** A {@link CheckpointFiles} over a local folder (top-level regular files only). */
export function localCheckpointFiles(dir: string): CheckpointFiles {
  return {
    location: dir,
    async list() {
      const entries = await readdir(dir, { withFileTypes: true }).catch((err: unknown) => {
        throw new CheckpointError(`cannot read checkpoint folder ${dir}`, { cause: err });
      });
      const out: CheckpointFile[] = [];
      for (const e of entries) {
        if (!e.isFile() || e.name.startsWith(".") || IGNORED.has(e.name)) continue;
        out.push({ name: e.name, size: (await stat(join(dir, e.name))).size });
      }
      return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    },
    async readBytes(name, maxBytes) {
      const fh = await open(join(dir, name), "r").catch((err: unknown) => {
        throw new CheckpointError(`${join(dir, name)} is missing`, { cause: err });
      });
      try {
        const size = (await fh.stat()).size;
        if (size > maxBytes)
          throw new CheckpointError(
            `${join(dir, name)} is ${size} bytes, over the ${maxBytes}-byte limit`,
          );
        const buf = new Uint8Array(size);
        let done = 0;
        while (done < size) {
          const { bytesRead } = await fh.read(buf, done, size - done, done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return buf.subarray(0, done);
      } finally {
        await fh.close();
      }
    },
    open: (name) => openFileSource(join(dir, name)),
    async *stream(name, signal) {
      for await (const chunk of createReadStream(join(dir, name), {
        highWaterMark: 1 << 20,
        signal,
      })) {
        yield chunk as Uint8Array;
      }
    },
  };
}

const NEVER_ABORTED = new AbortController().signal;

/** A {@link ByteSource} over one object of a store, read with range GETs. */
export async function storeByteSource(store: ObjectStore, key: string): Promise<ByteSource> {
  const info = await store.stat(key);
  if (!info) throw new CheckpointError(`object ${key} is missing in ${store.location}`);
  return {
    name: `${store.location}/${key}`,
    size: info.size,
    async read(offset, length, into, signal) {
      if (offset < 0 || offset + length > info.size) {
        throw new CheckpointError(
          `read of ${length} bytes at ${offset} is outside the ${info.size}-byte object ${key}`,
        );
      }
      let at = 0;
      // Always pass a signal: the local store's ranged read hands `signal ?? null` to
      // fs.createReadStream, which Node 20 rejects when the signal is absent.
      const opts = { range: { offset, length }, signal: signal ?? NEVER_ABORTED };
      for await (const chunk of store.get(key, opts)) {
        if (at + chunk.byteLength > length)
          throw new CheckpointError(`object ${key} returned more than the ${length} bytes asked`);
        into.set(chunk, at);
        at += chunk.byteLength;
      }
      if (at !== length)
        throw new CheckpointError(`object ${key} returned ${at} of ${length} bytes at ${offset}`);
    },
    async close() {},
  };
}

/** A {@link CheckpointFiles} over the objects directly under `prefix` in a store. */
export function storeCheckpointFiles(store: ObjectStore, prefix: string): CheckpointFiles {
  const base = prefix.replace(/\/+$/, "");
  const key = (name: string) => (base === "" ? name : joinKey(base, name));
  return {
    location: `${store.location}/${base}`,
    async list(signal) {
      const out: CheckpointFile[] = [];
      const lead = base === "" ? "" : `${base}/`;
      for await (const o of store.list(lead, signal ? { signal } : {})) {
        const name = o.key.slice(lead.length);
        if (name.includes("/") || IGNORED.has(name)) continue;
        out.push({ name, size: o.size });
      }
      return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    },
    async readBytes(name, maxBytes, signal) {
      const info = await store.stat(key(name));
      if (!info) throw new CheckpointError(`${key(name)} is missing in ${store.location}`);
      if (info.size > maxBytes)
        throw new CheckpointError(
          `${key(name)} is ${info.size} bytes, over the ${maxBytes}-byte limit`,
        );
      return store.getBytes(key(name), signal ? { signal } : {});
    },
    open: (name) => storeByteSource(store, key(name)),
    stream: (name, signal) => store.get(key(name), signal ? { signal } : {}),
  };
}
