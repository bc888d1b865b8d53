import type { Bus, Kv } from "./bus.ts";

/**
 * What a service remembers about one of its jobs in a KV bucket (key = step key): the source of
 * its gRPC Get and Watch. Shared by the capture, directions and patcher services.
 */
export interface JobRecord {
  readonly state: "queued" | "running" | "succeeded" | "failed" | "cancelled";
  readonly stepKey: string;
  readonly outputKey: string;
  readonly cached: boolean;
  /** Progress in the job's own unit (prompts, steps, bytes). */
  readonly done: number;
  readonly total: number;
  readonly message: string;
  readonly error?: { readonly code: string; readonly message: string };
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** True for states a job never leaves. */
export function isTerminalJob(r: JobRecord): boolean {
  return r.state === "succeeded" || r.state === "failed" || r.state === "cancelled";
}

/** Reads a record (undefined when the job is unknown). */
export async function getJobRecord(kv: Kv, key: string): Promise<JobRecord | undefined> {
  return (await kv.get(key))?.value as JobRecord | undefined;
}

/** Writes a record, merging `patch` into `base` and stamping `updatedAt`. */
export async function updateJobRecord(
  kv: Kv,
  key: string,
  base: JobRecord | undefined,
  patch: Partial<JobRecord>,
): Promise<JobRecord> {
  const now = new Date().toISOString();
  const next = {
    state: "queued",
    stepKey: key,
    outputKey: "",
    cached: false,
    done: 0,
    total: 0,
    message: "",
    createdAt: now,
    ...base,
    ...patch,
    updatedAt: now,
  } as JobRecord;
  await kv.put(key, next);
  return next;
}

/** What a Start call of a step service answers. */
export interface StartedJob {
  readonly jobId: string;
  readonly stepKey: string;
  /** True when the output already existed and nothing was queued. */
  readonly cached: boolean;
}

/**
 * Starts a step job the way the step services do. When `outputExists()` the record is marked
 * succeeded and cached and nothing is queued; otherwise a new, failed or cancelled job's record
 * goes (back) to queued and the job is published with its step key as id, so a duplicate of a job
 * still queued or running collapses into it.
 */
export async function startStepJob(
  bus: Bus,
  kv: Kv,
  kind: string,
  job: { readonly stepKey: string; readonly outputKey: string },
  outputExists: () => Promise<boolean>,
): Promise<StartedJob> {
  const key = job.stepKey;
  const rec = await getJobRecord(kv, key);
  if (await outputExists()) {
    if (rec?.state !== "succeeded")
      await updateJobRecord(kv, key, rec, {
        state: "succeeded",
        cached: true,
        outputKey: job.outputKey,
        message: "served from the store",
      });
    return { jobId: key, stepKey: key, cached: true };
  }
  if (!rec || rec.state === "failed" || rec.state === "cancelled")
    await updateJobRecord(kv, key, undefined, {
      state: "queued",
      outputKey: job.outputKey,
      message: "queued",
    });
  await bus.publishJob(kind, job, { id: key });
  return { jobId: key, stepKey: key, cached: false };
}

/**
 * `first` (the record under `key` now), then its later versions until a terminal one (a version
 * replaced before the watch saw it can be skipped, see {@link Kv.watch}; the terminal one is the
 * last and always arrives). A KV watch starts with the current value; when that is `first` again
 * it is not repeated.
 */
export async function* watchJobRecord(
  kv: Kv,
  key: string,
  first: JobRecord,
  signal?: AbortSignal,
): AsyncGenerator<JobRecord> {
  yield first;
  if (isTerminalJob(first)) return;
  let last = JSON.stringify(first);
  for await (const change of kv.watch({ filter: key, ...(signal ? { signal } : {}) })) {
    if (change.operation !== "put") continue;
    const r = change.value as JobRecord;
    const text = JSON.stringify(r);
    if (text === last) continue;
    last = text;
    yield r;
    if (isTerminalJob(r)) return;
  }
}
