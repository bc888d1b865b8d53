import { loadCheckpoint, storeCheckpointFiles } from "@abl/checkpoint";
import {
  type AbliterationReport,
  buildPlan,
  createStoreOutput,
  MAX_DIRECTION_FILE_BYTES,
  type PatchEvent,
  parseDirectionFile,
  patchCheckpoint,
  REPORT_NAME,
} from "@abl/patch";
import {
  artifactExists,
  collectBytes,
  joinKey,
  type ObjectStore,
  readArtifactFile,
} from "@abl/store";
import type { PatchJob } from "./patch-job.ts";

/** Name of the tensor file inside a directions artifact. */
export const DIRECTIONS_FILE = "directions.safetensors";

/** Reads the direction bytes: a `.safetensors` object, or the file inside a directions artifact. */
async function directionBytes(
  store: ObjectStore,
  key: string,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const info = key.endsWith(".safetensors")
    ? await store.stat(key)
    : await store.stat(joinKey(key, DIRECTIONS_FILE));
  if (info && info.size > MAX_DIRECTION_FILE_BYTES) {
    throw new Error(
      `direction ${key} is ${info.size} bytes, over the ${MAX_DIRECTION_FILE_BYTES}-byte limit`,
    );
  }
  if (key.endsWith(".safetensors")) return store.getBytes(key, { signal });
  return collectBytes(readArtifactFile(store, key, DIRECTIONS_FILE, { signal }));
}

/** Reads the `abliteration.json` of a published patched model. */
export async function readPatchReport(
  store: ObjectStore,
  outputKey: string,
  signal?: AbortSignal,
): Promise<AbliterationReport> {
  const bytes = await collectBytes(
    readArtifactFile(store, outputKey, REPORT_NAME, signal ? { signal } : {}),
  );
  return JSON.parse(new TextDecoder().decode(bytes)) as AbliterationReport;
}

/**
 * Runs one patch job against a store: if the output artifact already exists it is returned as
 * cached; otherwise the model is streamed from the store, patched and streamed back under the
 * output key, published with its manifest last.
 */
export async function runPatchJob(
  store: ObjectStore,
  job: PatchJob,
  onProgress: (e: PatchEvent) => void,
  signal: AbortSignal,
): Promise<{ cached: boolean; report: AbliterationReport }> {
  if (await artifactExists(store, job.outputKey)) {
    return { cached: true, report: await readPatchReport(store, job.outputKey, signal) };
  }
  const ck = await loadCheckpoint(storeCheckpointFiles(store, job.modelKey), signal);
  const directions = await parseDirectionFile(
    await directionBytes(store, job.directionKey, signal),
    {
      hidden: ck.config.hiddenSize,
      source: job.directionKey,
      ...(job.directionLayer === null ? {} : { layer: job.directionLayer }),
    },
  );
  const plan = buildPlan(ck, directions, {
    targets: job.targets,
    method: job.method,
    strength: job.strength,
    untie: job.untie,
    ...(job.rules.length > 0 ? { rules: job.rules } : {}),
  });
  const gen = patchCheckpoint(ck, plan, createStoreOutput(store, job.outputKey), { signal });
  for (;;) {
    const r = await gen.next();
    if (r.done) return { cached: false, report: r.value };
    onProgress(r.value);
  }
}
