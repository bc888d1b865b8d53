import { createHash } from "node:crypto";
import { IntegrityError, ObjectNotFoundError, StoreError } from "./errors.ts";
import { joinKey, validateKey } from "./keys.ts";
import type { GetOptions, ObjectStore } from "./object-store.ts";

/** Name of the file that makes an artifact visible; always written last. */
export const MANIFEST_NAME = "manifest.json";

/** Largest manifest we read into memory (a manifest lists files, it never holds data). */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/** One file of an artifact, as recorded in its manifest. */
export interface ArtifactFile {
  /** Path relative to the artifact's prefix (may contain `/`). */
  name: string;
  size: number;
  sha256: string;
}

/** The `manifest.json` of an artifact: every file's digest plus the writer's metadata. */
export interface ArtifactManifest {
  version: 1;
  /** Files sorted by name. */
  files: ArtifactFile[];
  /** Caller metadata (step kind, params, code version, ...). */
  meta: Record<string, unknown>;
  /** ISO time of the commit. */
  createdAt: string;
}

/**
 * Writes the files of one artifact under a prefix; nothing is visible to `readArtifact` until
 * `commit` writes the manifest. A writer that dies before `commit` leaves only invisible files.
 */
export interface ArtifactWriter {
  readonly prefix: string;
  /** Streams one file into the artifact. */
  addFile(
    name: string,
    body: Uint8Array | AsyncIterable<Uint8Array>,
    opts?: { size?: number; signal?: AbortSignal },
  ): Promise<ArtifactFile>;
  /** Checks every file is stored as written, then writes `manifest.json` last. */
  commit(meta?: Record<string, unknown>): Promise<ArtifactManifest>;
  /** Deletes the files written so far (the manifest never existed). */
  abort(): Promise<void>;
}

function fileKey(prefix: string, name: string): string {
  validateKey(name);
  if (name === MANIFEST_NAME)
    throw new StoreError(`artifact file name '${MANIFEST_NAME}' is reserved`);
  return joinKey(prefix, name);
}

/** Starts writing an artifact under `prefix` (e.g. `directions/<stepKey>`). */
export function createArtifactWriter(store: ObjectStore, prefix: string): ArtifactWriter {
  validateKey(prefix);
  const files = new Map<string, ArtifactFile>();
  let committed = false;
  return {
    prefix,
    async addFile(name, body, opts = {}) {
      if (committed) throw new StoreError(`artifact ${prefix} is already committed`);
      if (files.has(name))
        throw new StoreError(`artifact ${prefix} already has a file named ${JSON.stringify(name)}`);
      const info = await store.put(fileKey(prefix, name), body, opts);
      const file = { name, size: info.size, sha256: info.sha256 };
      files.set(name, file);
      return file;
    },
    async commit(meta = {}) {
      if (committed) throw new StoreError(`artifact ${prefix} is already committed`);
      const list = [...files.values()].sort((a, b) =>
        a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
      );
      for (const f of list) {
        const info = await store.stat(joinKey(prefix, f.name));
        if (!info) throw new ObjectNotFoundError(joinKey(prefix, f.name));
        if (info.size !== f.size || (info.sha256 !== "" && info.sha256 !== f.sha256)) {
          throw new IntegrityError(
            `artifact file ${prefix}/${f.name} changed before commit: now ${info.size} bytes sha256 ${info.sha256}, written ${f.size} bytes sha256 ${f.sha256}`,
          );
        }
      }
      const manifest: ArtifactManifest = {
        version: 1,
        files: list,
        meta,
        createdAt: new Date().toISOString(),
      };
      await store.put(
        joinKey(prefix, MANIFEST_NAME),
        new TextEncoder().encode(JSON.stringify(manifest, null, 1)),
      );
      committed = true;
      return manifest;
    },
    async abort() {
      for (const f of files.values()) await store.delete(joinKey(prefix, f.name));
      files.clear();
    },
  };
}

/** One file to publish with {@link publishArtifact}. */
export interface ArtifactInput {
  name: string;
  body: Uint8Array | AsyncIterable<Uint8Array>;
  size?: number;
}

/** Writes `files` under `prefix`, then the manifest last; returns the manifest. */
export async function publishArtifact(
  store: ObjectStore,
  prefix: string,
  files: ArtifactInput[],
  meta: Record<string, unknown> = {},
  opts: { signal?: AbortSignal } = {},
): Promise<ArtifactManifest> {
  const w = createArtifactWriter(store, prefix);
  for (const f of files) {
    opts.signal?.throwIfAborted();
    const o: { size?: number; signal?: AbortSignal } = {};
    if (f.size !== undefined) o.size = f.size;
    if (opts.signal) o.signal = opts.signal;
    await w.addFile(f.name, f.body, o);
  }
  opts.signal?.throwIfAborted();
  return w.commit(meta);
}

/** The manifest of the artifact under `prefix`, or `undefined` if it was never committed. */
export async function readArtifact(
  store: ObjectStore,
  prefix: string,
): Promise<ArtifactManifest | undefined> {
  const key = joinKey(prefix, MANIFEST_NAME);
  const info = await store.stat(key);
  if (!info) return undefined;
  if (info.size > MAX_MANIFEST_BYTES) {
    throw new StoreError(
      `manifest ${key} is ${info.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`,
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = await store.getBytes(key);
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return undefined;
    throw err;
  }
  let m: ArtifactManifest;
  try {
    m = JSON.parse(new TextDecoder().decode(bytes)) as ArtifactManifest;
  } catch (err) {
    throw new IntegrityError(`manifest ${key} is not valid JSON`, { cause: err });
  }
  if (
    m?.version !== 1 ||
    !Array.isArray(m.files) ||
    m.files.some(
      (f) =>
        typeof f?.name !== "string" || typeof f.size !== "number" || typeof f.sha256 !== "string",
    )
  ) {
    throw new IntegrityError(`manifest ${key} does not have the version 1 shape`);
  }
  return m;
}

/** Whether a committed artifact exists under `prefix`. */
export async function artifactExists(store: ObjectStore, prefix: string): Promise<boolean> {
  return (await store.stat(joinKey(prefix, MANIFEST_NAME))) !== undefined;
}

/**
 * Streams one file of a committed artifact, checking it against the manifest's size and sha256
 * (and the store's own digest). Throws `ObjectNotFoundError` if the artifact or file is missing.
 */
export async function* readArtifactFile(
  store: ObjectStore,
  prefix: string,
  name: string,
  opts: GetOptions = {},
): AsyncGenerator<Uint8Array> {
  const manifest = await readArtifact(store, prefix);
  if (!manifest) throw new ObjectNotFoundError(joinKey(prefix, MANIFEST_NAME));
  const entry = manifest.files.find((f) => f.name === name);
  if (!entry) throw new ObjectNotFoundError(fileKey(prefix, name));
  const key = fileKey(prefix, name);
  if (opts.range) {
    yield* store.get(key, opts);
    return;
  }
  const hash = createHash("sha256");
  let size = 0;
  for await (const c of store.get(key, opts)) {
    hash.update(c);
    size += c.byteLength;
    yield c;
  }
  const sha = hash.digest("hex");
  if (size !== entry.size || sha !== entry.sha256) {
    throw new IntegrityError(
      `artifact file ${key} is ${size} bytes with sha256 ${sha}, manifest records ${entry.size} bytes with sha256 ${entry.sha256}`,
    );
  }
}

/** Prefixes of every committed artifact below `prefix` (those with a manifest), sorted. */
export async function* listArtifacts(
  store: ObjectStore,
  prefix: string,
  opts: { signal?: AbortSignal } = {},
): AsyncGenerator<string> {
  const suffix = `/${MANIFEST_NAME}`;
  for await (const info of store.list(prefix, opts)) {
    if (info.key.endsWith(suffix)) yield info.key.slice(0, -suffix.length);
  }
}
