import type { Kv } from "@abl/bus";

/** KV bucket with one record per capture job, keyed by step key. */
export const CAPTURE_JOBS_BUCKET = "capture_jobs";

/** What the service remembers about a job: the source of Get and Watch. */
export interface CaptureRecord {
  readonly state: "queued" | "running" | "succeeded" | "failed" | "cancelled";
  readonly stepKey: string;
  readonly outputKey: string;
  readonly cached: boolean;
  /** Prompts done and total across both buckets. */
  readonly done: number;
  readonly total: number;
  readonly message: string;
  readonly error?: { readonly code: string; readonly message: string };
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** True for states a job never leaves. */
export function isTerminal(r: CaptureRecord): boolean {
  return r.state === "succeeded" || r.state === "failed" || r.state === "cancelled";
}

/** Reads a record (undefined when the job is unknown). */
export async function getRecord(kv: Kv, key: string): Promise<CaptureRecord | undefined> {
  return (await kv.get(key))?.value as CaptureRecord | undefined;
}

/** Writes a record, merging `patch` into `base` and stamping `updatedAt`. */
export async function updateRecord(
  kv: Kv,
  key: string,
  base: CaptureRecord | undefined,
  patch: Partial<CaptureRecord>,
): Promise<CaptureRecord> {
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
  } as CaptureRecord;
  await kv.put(key, next);
  return next;
}
