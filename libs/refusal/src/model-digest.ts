import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/**
 * Content digest of a local model folder: sha256 of the canonical list of its files (name, size,
 * sha256), hidden files skipped. Two folders with the same files get the same digest wherever
 * they live, which is what the activations manifest needs to tie residuals to weights.
 */
export async function modelFolderDigest(dir: string, signal?: AbortSignal): Promise<string> {
  const names = (await readdir(dir)).filter((n) => !n.startsWith(".")).sort();
  const files: { name: string; size: number; sha256: string }[] = [];
  for (const name of names) {
    signal?.throwIfAborted();
    const path = join(dir, name);
    const st = await stat(path);
    if (!st.isFile()) continue;
    const h = createHash("sha256");
    for await (const chunk of createReadStream(path, signal ? { signal } : {}))
      h.update(chunk as Buffer);
    files.push({ name, size: st.size, sha256: h.digest("hex") });
  }
  return `sha256:${createHash("sha256").update(JSON.stringify(files)).digest("hex")}`;
}
