import {
  getJobRecord as getRecord,
  isTerminalJob as isTerminal,
  type JobRecord,
  updateJobRecord as updateRecord,
} from "@abl/bus";

/** KV bucket with one record per capture job, keyed by step key. */
export const CAPTURE_JOBS_BUCKET = "capture_jobs";

/** What the service remembers about a capture job (done/total count prompts across both buckets). */
export type CaptureRecord = JobRecord;

export { getRecord, isTerminal, updateRecord };
