import { createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ObjectStore } from "@abl/store";
import { ActivationsError } from "./errors.ts";

/** Marker written last into a materialized model folder; a folder without it is incomplete. */
export const MODEL_COMPLETE_MARKER = ".abl-complete";
/** Files per model folder accepted; an HF checkpoint has tens, a wrong prefix could have millions. */
export const MAX_MODEL_FILES = 10_000;

/**
 * Copies the model folder under `prefix` in the store to `<cacheDir>/<name>` (the engine and the
 * worker need local files), reusing an earlier complete copy. Written into a temporary folder
 * and renamed, so a crash never leaves a folder that looks complete.
 */
export async function materializeModel(
  store: ObjectStore,
  prefix: string,
  cacheDir: string,
  name: string,
  signal?: AbortSignal,
): Promise<string> {
  if (!/^[\w.:-]+$/.test(name))
    throw new ActivationsError(`model cache name "${name}" has characters outside [A-Za-z0-9_.:-]`);
  const dir = join(cacheDir, name.replace(/:/g, "_"));
  if (
    await stat(join(dir, MODEL_COMPLETE_MARKER)).then(
      () => true,
      () => false,
    )
  )
    return dir;
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  const base = prefix.replace(/\/+$/, "");
  let n = 0;
  try {
    for await (const obj of store.list(`${base}/`, signal ? { signal } : {})) {
      if (++n > MAX_MODEL_FILES)
        throw new ActivationsError(
          `${base}/ holds more than ${MAX_MODEL_FILES} files; not a model folder`,
        );
      const rel = obj.key.slice(base.length + 1);
      if (rel.split("/").includes(".."))
        throw new ActivationsError(`store key ${obj.key} escapes the model folder`);
      const path = join(tmp, rel);
      await mkdir(dirname(path), { recursive: true });
      await pipeline(
        Readable.from(store.get(obj.key, signal ? { signal } : {})),
        createWriteStream(path),
      );
    }
    if (n === 0) throw new ActivationsError(`no model files under ${base}/ in ${store.location}`);
    await pipeline(
      Readable.from([Buffer.from(new Date().toISOString())]),
      createWriteStream(join(tmp, MODEL_COMPLETE_MARKER)),
    );
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
    return dir;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
