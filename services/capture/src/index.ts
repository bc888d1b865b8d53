export {
  CAPTURE_ACK_WAIT_MS,
  type CaptureConsumerOptions,
  consumeCaptureJobs,
  PROGRESS_INTERVAL_MS,
} from "./capture-consumer.ts";
export { type CaptureHandlerOptions, createCaptureHandlers } from "./capture-handlers.ts";
export {
  CAPTURE_JOB_KIND,
  type CaptureJob,
  captureJobFromRequest,
  MAX_CONTRAST_ARTIFACT_BYTES,
  resolveJobContrast,
} from "./capture-request.ts";
export {
  createEngineSlot,
  type EngineSlot,
  type EngineSlotOptions,
  type SlotModel,
} from "./engine-slot.ts";
export {
  CAPTURE_JOBS_BUCKET,
  type CaptureRecord,
  getRecord,
  isTerminal,
  updateRecord,
} from "./job-records.ts";
