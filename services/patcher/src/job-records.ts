import {
  getJobRecord as getRecord,
  isTerminalJob as isTerminal,
  type JobRecord,
  updateJobRecord as updateRecord,
} from "@abl/bus";

/** KV bucket that holds one record per patch job, keyed by step key (done/total count bytes). */
export const PATCH_JOBS_BUCKET = "patch_jobs";

export { getRecord, isTerminal, type JobRecord, updateRecord };
