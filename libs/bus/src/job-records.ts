import type { Kv } from "./bus.ts";

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
