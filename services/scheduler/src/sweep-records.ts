/**
 * The state of every sweep the scheduler runs, in the KV bucket `abl-sweeps` (key = sweep id), so
 * GetSweep answers from any replica and a restarted scheduler knows what it was doing.
 */
import { type Kv, KvKeyExistsError, KvRevisionConflictError } from "@abl/bus";

/** KV bucket of sweep records. */
export const SWEEPS_BUCKET = "abl-sweeps";

export type SweepState = "queued" | "running" | "succeeded" | "failed" | "cancelled";

/** One step of a sweep as the scheduler saw it. */
export interface SweepStepRecord {
  readonly key: string;
  readonly kind: string;
  readonly label: string;
  readonly state: "running" | "succeeded" | "failed";
  readonly cached: boolean;
  readonly attempts: number;
  readonly error?: string;
}

/** What `abl-sweeps/<id>` holds. */
export interface SweepRecord {
  readonly sweepId: string;
  readonly specDigest: string;
  readonly state: SweepState;
  readonly phase: string;
  readonly steps: readonly SweepStepRecord[];
  readonly error?: string;
  /** Store prefix of the report artifact, once written. */
  readonly report?: string;
  readonly summaries?: ReadonlyArray<{
    variant: string;
    trials: number;
    passes: number;
    accuracy: number | null;
  }>;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** Compare-and-set retries before giving up: only a storm of writers on one sweep exhausts them. */
const MAX_CAS_ATTEMPTS = 20;

/** The sweep's record, or undefined. */
export async function getSweep(kv: Kv, sweepId: string): Promise<SweepRecord | undefined> {
  return (await kv.get(sweepId))?.value as SweepRecord | undefined;
}

/**
 * Applies `change` to the record with compare-and-set, retrying on a concurrent writer, so step
 * events and the final state never overwrite each other.
 */
export async function updateSweep(
  kv: Kv,
  sweepId: string,
  change: (r: SweepRecord | undefined) => SweepRecord,
): Promise<SweepRecord> {
  for (let attempt = 0; ; attempt++) {
    const cur = await kv.get(sweepId);
    const next = {
      ...change(cur?.value as SweepRecord | undefined),
      updatedAt: new Date().toISOString(),
    };
    try {
      if (cur) await kv.update(sweepId, next, cur.revision);
      else await kv.create(sweepId, next);
      return next;
    } catch (err) {
      const conflict = err instanceof KvRevisionConflictError || err instanceof KvKeyExistsError;
      if (!conflict || attempt >= MAX_CAS_ATTEMPTS) throw err;
    }
  }
}

/** Whether no more changes will come. */
export function isFinished(r: SweepRecord): boolean {
  return r.state === "succeeded" || r.state === "failed" || r.state === "cancelled";
}
