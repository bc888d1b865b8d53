import type { Kv } from "@abl/bus";

/** KV bucket that holds one record per patch job, keyed by step key. */
export const PATCH_JOBS_BUCKET = "patch_jobs";

/** What the service remembers about a job; the source of Get and Watch. */
export interface JobRecord {
  readonly state: "queued" | "running" | "succeeded" | "failed" | "cancelled";
  readonly stepKey: string;
  readonly outputKey: string;
  readonly cached: boolean;
  /** Bytes done and total of the running patch. */
  readonly done: number;
  readonly total: number;
  readonly message: string;
  readonly error?: { readonly code: string; readonly message: string };
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** True for states a job never leaves. */
export function isTerminal(r: JobRecord): boolean {
  return r.state === "succeeded" || r.state === "failed" || r.state === "cancelled";
}

/** Reads a record (undefined when the job is unknown). */
export async function getRecord(kv: Kv, key: string): Promise<JobRecord | undefined> {
  return (await kv.get(key))?.value as JobRecord | undefined;
}

/** Writes a record, merging `patch` into the current one and stamping `updatedAt`. */
export async function updateRecord(
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
