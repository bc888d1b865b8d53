export type {
  Bus,
  BusEvent,
  ConsumeOptions,
  DeadLetter,
  Job,
  JobConsumer,
  JobHandler,
  Kv,
  KvChange,
  KvEntry,
  KvOptions,
  SubscribeOptions,
} from "./bus.ts";
export {
  DEDUP_WINDOW_MS,
  DEFAULT_ACK_WAIT_MS,
  DEFAULT_BACKOFF_MS,
  DEFAULT_MAX_DELIVER,
} from "./consume-options.ts";
export {
  BusClosedError,
  BusError,
  InvalidNameError,
  KvBucketNotFoundError,
  KvKeyExistsError,
  KvRevisionConflictError,
  PayloadTooLargeError,
  TerminalJobError,
} from "./errors.ts";
export {
  getJobRecord,
  isTerminalJob,
  type JobRecord,
  type StartedJob,
  startStepJob,
  updateJobRecord,
  watchJobRecord,
} from "./job-records.ts";
export { createMemoryBus } from "./memory-bus.ts";
export { MEMORY_MAX_PAYLOAD_BYTES, subjectMatches } from "./names.ts";
export {
  createNatsBus,
  DEAD_LETTER_BUCKET,
  EVENTS_MAX_AGE_MS,
  EVENTS_STREAM,
  JOBS_STREAM,
  type NatsBusOptions,
  PULL_EXPIRES_MS,
} from "./nats-bus.ts";
