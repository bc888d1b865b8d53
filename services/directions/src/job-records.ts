import type { Kv } from "@abl/bus";

/** KV bucket with one record per directions job, keyed by step key. */
export const DIRECTIONS_JOBS_BUCKET = "directions_jobs";

/** What the service remembers about a job: the source of Get and Watch. */
export interface DirectionsRecord {
  readonly state: "queued" | "running" | "succeeded" | "failed" | "cancelled";
  readonly stepKey: string;
  readonly outputKey: string;
  readonly cached: boolean;
  /** Steps done and total (read, fit, rank, select, publish). */
  readonly done: number;
  readonly total: number;
  readonly message: string;
  readonly error?: { readonly code: string; readonly message: string };
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** True for states a job never leaves. */
export function isTerminal(r: DirectionsRecord): boolean {
  return r.state === "succeeded" || r.state === "failed" || r.state === "cancelled";
}

/** Reads a record (undefined when the job is unknown). */
export async function getRecord(kv: Kv, key: string): Promise<DirectionsRecord | undefined> {
  return (await kv.get(key))?.value as DirectionsRecord | undefined;
}

/** Writes a record, merging `patch` into `base` and stamping `updatedAt`. */
export async function updateRecord(
  kv: Kv,
  key: string,
  base: DirectionsRecord | undefined,
  patch: Partial<DirectionsRecord>,
): Promise<DirectionsRecord> {
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
  } as DirectionsRecord;
  await kv.put(key, next);
  return next;
}
