/**
 * Runs the transformers capture worker as a Kubernetes Job on a GPU node (through @abl/kube).
 * The job JSON travels in the ABL_CAPTURE_JOB environment variable (a Job has no stdin); the
 * worker's JSON lines come back from the pod log. Use it with a capturer whose model and output
 * are presigned URLs (`model: {store, prefix, files}`, `upload`), since the pod shares no disk.
 */
import { buildCaptureJob, type KubeLauncher, type ResourceSpec } from "@abl/kube";
import { ActivationsError } from "./errors.ts";
import type { WorkerLauncher } from "./transformers-capturer.ts";

/** Largest job JSON put in an environment variable; the API server caps objects near 1.5 MiB. */
export const MAX_KUBE_JOB_ENV_BYTES = 1024 * 1024;
/** Default time a capture Job may take before the launcher gives up. */
export const DEFAULT_KUBE_CAPTURE_TIMEOUT_MS = 6 * 3600 * 1000;

/** Options of {@link createKubeWorkerLauncher}. */
export interface KubeWorkerLauncherOptions {
  readonly kube: KubeLauncher;
  /** Image with python, torch, transformers and worker/capture_worker.py at `scriptPath`. */
  readonly image: string;
  readonly scriptPath?: string;
  readonly resources?: ResourceSpec;
  readonly timeoutMs?: number;
  /** Distinguishes concurrent Jobs (e.g. the step key). */
  readonly name: string;
}

/** A {@link WorkerLauncher} that runs each worker job as a Kubernetes Job. */
export function createKubeWorkerLauncher(options: KubeWorkerLauncherOptions): WorkerLauncher {
  let n = 0;
  return async function* launch(job, signal) {
    const text = JSON.stringify(job);
    if (text.length > MAX_KUBE_JOB_ENV_BYTES) {
      throw new ActivationsError(
        `capture job is ${text.length} bytes, over the ${MAX_KUBE_JOB_ENV_BYTES}-byte limit for a Job's environment`,
      );
    }
    const body = buildCaptureJob({
      name: `${options.name}-${n++}`,
      namespace: options.kube.namespace,
      image: options.image,
      command: ["python3", options.scriptPath ?? "/app/capture_worker.py"],
      env: { ABL_CAPTURE_JOB: text, PYTHONUNBUFFERED: "1" },
      ...(options.resources ? { resources: options.resources } : {}),
    });
    const result = await options.kube.runJob(body, {
      timeoutMs: options.timeoutMs ?? DEFAULT_KUBE_CAPTURE_TIMEOUT_MS,
      ...(signal ? { signal } : {}),
    });
    const lines = result.logs.split("\n").filter((l) => l.trim() !== "");
    // Relay the worker's lines first: its error line names the cause better than the Job status.
    yield* lines;
    if (!result.succeeded) throw new ActivationsError(`capture Job failed: ${result.reason}`);
  };
}
