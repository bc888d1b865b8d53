export {
  consumeDirectionsJobs,
  DIRECTIONS_ACK_WAIT_MS,
  type DirectionsConsumerOptions,
} from "./directions-consumer.ts";
export { createDirectionsHandlers, type DirectionsHandlerOptions } from "./directions-handlers.ts";
export {
  DIRECTIONS_JOB_KIND,
  type DirectionsJob,
  directionsJobFromRequest,
  MAX_BOOTSTRAP_SAMPLES,
} from "./directions-request.ts";
export {
  DIRECTIONS_JOBS_BUCKET,
  type DirectionsRecord,
  getRecord,
  isTerminal,
  updateRecord,
} from "./job-records.ts";
