/** Copies a folder out of an environment into memory, for the trial record. */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Environment } from "./environment.ts";

/**
 * Largest file kept in a trial record (verifier logs, ctrf.json, the agent's pane log); longer
 * files keep their tail, where the outcome usually shows. 8 MiB bounds a trial's record size.
 */
export const MAX_RECORD_FILE_BYTES = 8 * 1024 * 1024;

/** Every file under `remote` (relative path → bytes, tails of big files); throws on failure. */
export async function collectFiles(
  env: Environment,
  remote: string,
  signal?: AbortSignal,
): Promise<Record<string, Uint8Array>> {
  const local = await mkdtemp(join(tmpdir(), "abl-col-"));
  const files: Record<string, Uint8Array> = {};
  try {
    await env.download(remote, join(local, "d"), signal);
    for (const name of await readdir(join(local, "d"), { recursive: true })) {
      const data = await readFile(join(local, "d", name)).catch(() => null);
      if (data === null) continue;
      files[name] =
        data.length > MAX_RECORD_FILE_BYTES
          ? data.subarray(data.length - MAX_RECORD_FILE_BYTES)
          : data;
    }
  } finally {
    await rm(local, { recursive: true, force: true });
  }
  return files;
}
