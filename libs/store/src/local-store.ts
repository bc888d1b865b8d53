import { createHash, randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import {
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  writeFile,
} from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { checkByteCount, checkSha256, chunksOf, collectBytes } from "./body.ts";
import { IntegrityError, ObjectNotFoundError, StoreError } from "./errors.ts";
import { validateKey, validatePrefix } from "./keys.ts";
import type { GetOptions, ObjectInfo, ObjectStore, PutOptions } from "./object-store.ts";

/** Folder under the root that holds one JSON sidecar (`{size, sha256}`) per object. */
const META_DIR = ".abl-meta";
/** Folder under the root for in-flight writes; same file system as the data, so rename is atomic. */
const TMP_DIR = ".abl-tmp";

/** Options of {@link createLocalStore}. */
export interface LocalStoreOptions {
  /** Folder that holds the objects; created if missing. Keys map to files below it. */
  root: string;
  /** fsync each file before it is renamed into place (default true: survive power loss). */
  fsync?: boolean;
}

function readOpts(
  signal: AbortSignal | undefined,
  o: { start?: number; end?: number },
): { start?: number; end?: number; signal?: AbortSignal } {
  return signal ? { ...o, signal } : o;
}

interface Sidecar {
  size: number;
  sha256: string;
}

/**
 * An `ObjectStore` on a local folder: object `a/b` is the file `<root>/a/b`, so a model folder in
 * the store is directly loadable by other tools. Writes go to a temp file, then the sha256 sidecar
 * and the data are renamed into place. A missing or disagreeing sidecar is an `IntegrityError`.
 * Two processes writing *different* bytes to one key at the same moment can interleave the two
 * renames; the pair then reads as `IntegrityError` (never as wrong data). Content-addressed keys
 * (step keys) are written with identical bytes, which is safe. Temp files of a crashed writer
 * stay in `<root>/.abl-tmp` and may be deleted at any time no write is running.
 */
export function createLocalStore(options: LocalStoreOptions): ObjectStore {
  const root = resolve(options.root);
  const fsync = options.fsync ?? true;

  const dataPath = (key: string): string => {
    const p = join(root, validateKey(key));
    // validateKey already forbids escapes; this second check guards against future changes.
    if (!p.startsWith(root + sep))
      throw new StoreError(`key ${JSON.stringify(key)} resolves outside ${root}`);
    return p;
  };
  const metaPath = (key: string): string => join(root, META_DIR, `${validateKey(key)}.json`);

  async function readSidecar(key: string): Promise<Sidecar> {
    let text: string;
    try {
      text = await readFile(metaPath(key), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new IntegrityError(
          `object ${JSON.stringify(key)} in ${root} has no checksum sidecar (${metaPath(key)})`,
          {
            cause: err,
          },
        );
      }
      throw new StoreError(`reading checksum sidecar of ${JSON.stringify(key)}`, { cause: err });
    }
    try {
      const v = JSON.parse(text) as Sidecar;
      if (typeof v.size !== "number" || typeof v.sha256 !== "string")
        throw new Error("missing size or sha256");
      return v;
    } catch (err) {
      throw new IntegrityError(`checksum sidecar of ${JSON.stringify(key)} is malformed`, {
        cause: err,
      });
    }
  }

  async function writeAtomically(
    final: string,
    write: (tmp: string) => Promise<void>,
  ): Promise<void> {
    const tmp = join(root, TMP_DIR, randomUUID());
    await mkdir(join(root, TMP_DIR), { recursive: true });
    try {
      await write(tmp);
      await mkdir(dirname(final), { recursive: true });
      await rename(tmp, final);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async function put(
    key: string,
    body: Uint8Array | AsyncIterable<Uint8Array>,
    opts: PutOptions = {},
  ): Promise<ObjectInfo> {
    const target = dataPath(key);
    if (opts.size !== undefined) checkByteCount("size", opts.size);
    if (opts.sha256 !== undefined) checkSha256("sha256", opts.sha256);
    opts.signal?.throwIfAborted();
    const hash = createHash("sha256");
    let size = 0;
    const tmpData = join(root, TMP_DIR, randomUUID());
    await mkdir(join(root, TMP_DIR), { recursive: true });
    try {
      const fh = await open(tmpData, "wx");
      try {
        for await (const chunk of chunksOf(body, opts.signal)) {
          hash.update(chunk);
          size += chunk.byteLength;
          if (opts.size !== undefined && size > opts.size) {
            throw new StoreError(
              `body of ${JSON.stringify(key)} is longer than the declared size ${opts.size}`,
            );
          }
          await fh.write(chunk);
        }
        if (fsync) await fh.sync();
      } finally {
        await fh.close();
      }
      if (opts.size !== undefined && size !== opts.size) {
        throw new StoreError(
          `body of ${JSON.stringify(key)} is ${size} bytes, declared size ${opts.size}`,
        );
      }
      const sha256 = hash.digest("hex");
      if (opts.sha256 !== undefined && opts.sha256 !== sha256) {
        throw new IntegrityError(
          `body of ${JSON.stringify(key)} has sha256 ${sha256}, expected ${opts.sha256}`,
        );
      }
      const sidecar: Sidecar = { size, sha256 };
      // Sidecar first, data second: a crash in between leaves a disagreeing pair, which a read
      // reports as IntegrityError instead of serving unverified bytes.
      await writeAtomically(metaPath(key), (tmp) =>
        writeFile(tmp, JSON.stringify(sidecar), { flag: "wx" }),
      );
      await mkdir(dirname(target), { recursive: true });
      await rename(tmpData, target);
      return { key, size, sha256, lastModified: new Date() };
    } catch (err) {
      await rm(tmpData, { force: true });
      throw err;
    }
  }

  async function* get(key: string, opts: GetOptions = {}): AsyncGenerator<Uint8Array> {
    const path = dataPath(key);
    opts.signal?.throwIfAborted();
    const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT" || err.code === "ENOTDIR")
        throw new ObjectNotFoundError(key, { cause: err });
      throw new StoreError(`stat ${path}`, { cause: err });
    });
    if (!st.isFile()) throw new ObjectNotFoundError(key);
    if (opts.range) {
      const offset = checkByteCount("range.offset", opts.range.offset);
      const length = checkByteCount("range.length", opts.range.length);
      if (length === 0 || offset >= st.size) return;
      const end = Math.min(st.size, offset + length) - 1;
      for await (const chunk of createReadStream(
        path,
        readOpts(opts.signal, { start: offset, end }),
      )) {
        yield new Uint8Array(chunk as Buffer);
      }
      return;
    }
    const sidecar = await readSidecar(key);
    const hash = createHash("sha256");
    let size = 0;
    for await (const chunk of createReadStream(path, readOpts(opts.signal, {}))) {
      const c = chunk as Buffer;
      hash.update(c);
      size += c.byteLength;
      yield new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
    }
    const sha256 = hash.digest("hex");
    if (size !== sidecar.size || sha256 !== sidecar.sha256) {
      throw new IntegrityError(
        `object ${JSON.stringify(key)} in ${root} is corrupt: read ${size} bytes with sha256 ${sha256}, recorded ${sidecar.size} bytes with sha256 ${sidecar.sha256}`,
      );
    }
  }

  async function statKey(key: string): Promise<ObjectInfo | undefined> {
    const path = dataPath(key);
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      throw new StoreError(`stat ${path}`, { cause: err });
    }
    if (!st.isFile()) return undefined;
    const sidecar = await readSidecar(key);
    if (sidecar.size !== st.size) {
      throw new IntegrityError(
        `object ${JSON.stringify(key)} in ${root} is ${st.size} bytes but its sidecar records ${sidecar.size}`,
      );
    }
    return { key, size: st.size, sha256: sidecar.sha256, lastModified: st.mtime };
  }

  async function* list(
    prefix: string,
    opts: { signal?: AbortSignal } = {},
  ): AsyncGenerator<ObjectInfo> {
    validatePrefix(prefix);
    // Walk only the deepest folder the prefix names, then filter by the full string prefix.
    const slash = prefix.lastIndexOf("/");
    const baseRel = slash >= 0 ? prefix.slice(0, slash) : "";
    const keys: string[] = [];
    const walk = async (rel: string): Promise<void> => {
      opts.signal?.throwIfAborted();
      let entries: import("node:fs").Dirent[];
      try {
        entries = await readdir(rel === "" ? root : join(root, rel), { withFileTypes: true });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ENOTDIR") return;
        throw new StoreError(`listing ${join(root, rel)}`, { cause: err });
      }
      for (const e of entries) {
        if (rel === "" && e.name.startsWith(".abl")) continue;
        const k = rel === "" ? e.name : `${rel}/${e.name}`;
        if (e.isDirectory()) {
          if (k.startsWith(prefix) || prefix.startsWith(`${k}/`)) await walk(k);
        } else if (e.isFile() && k.startsWith(prefix)) {
          keys.push(k);
        }
      }
    };
    await walk(baseRel);
    keys.sort();
    for (const k of keys) {
      const info = await statKey(k);
      if (info) yield info;
    }
  }

  async function del(key: string): Promise<void> {
    const path = dataPath(key);
    await rm(path, { force: true });
    await rm(metaPath(key), { force: true });
    // Drop folders left empty, so `list` and users browsing the folder see no husks.
    for (const base of [root, join(root, META_DIR)]) {
      let dir = dirname(join(base, key));
      while (dir.startsWith(base + sep)) {
        try {
          await rmdir(dir);
        } catch {
          break;
        }
        dir = dirname(dir);
      }
    }
  }

  return {
    kind: "local",
    location: root,
    put,
    get,
    getBytes: (key, opts) => collectBytes(get(key, opts)),
    stat: statKey,
    list,
    delete: del,
  };
}
