export {
  getRecord,
  isTerminal,
  type JobRecord,
  PATCH_JOBS_BUCKET,
  updateRecord,
} from "./job-records.ts";
export {
  consumePatchJobs,
  PATCH_ACK_WAIT_MS,
  type PatchConsumerOptions,
  PROGRESS_INTERVAL_MS,
} from "./patch-consumer.ts";
export {
  PATCH_CODE_VERSION,
  PATCH_JOB_KIND,
  type PatchJob,
  patchJobFromRequest,
} from "./patch-job.ts";
export { createPatcherHandlers, type PatcherHandlerOptions } from "./patcher-handlers.ts";
export { DIRECTIONS_FILE, readPatchReport, runPatchJob } from "./run-patch-job.ts";
