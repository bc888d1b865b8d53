import {
  getJobRecord as getRecord,
  isTerminalJob as isTerminal,
  type JobRecord,
  updateJobRecord as updateRecord,
} from "@abl/bus";

/** KV bucket with one record per directions job, keyed by step key. */
export const DIRECTIONS_JOBS_BUCKET = "directions_jobs";

/** What the service remembers about a directions job (done/total count steps: read, fit, rank, select, publish). */
export type DirectionsRecord = JobRecord;

export { getRecord, isTerminal, updateRecord };
