import { JobState } from "./gen/abliterate/v1/common_pb.ts";

/** Job states as the lower-case words used in logs, bus events and the CLI. */
export const JOB_STATE_NAMES = [
  "unspecified",
  "queued",
  "running",
  "succeeded",
  "failed",
  "cancelled",
] as const;

/** A job state as a string literal. */
export type JobStateName = (typeof JOB_STATE_NAMES)[number];

const TO_ENUM: Record<JobStateName, JobState> = {
  unspecified: JobState.UNSPECIFIED,
  queued: JobState.QUEUED,
  running: JobState.RUNNING,
  succeeded: JobState.SUCCEEDED,
  failed: JobState.FAILED,
  cancelled: JobState.CANCELLED,
};

/** The string literal of a wire `JobState` (unknown numbers from newer peers: `unspecified`). */
export function jobStateName(state: JobState): JobStateName {
  return JOB_STATE_NAMES[state] ?? "unspecified";
}

/** The wire `JobState` of a string literal. */
export function jobStateFromName(name: JobStateName): JobState {
  return TO_ENUM[name];
}

/** True for states after which a job never changes again. */
export function isTerminalJobState(state: JobState): boolean {
  return state === JobState.SUCCEEDED || state === JobState.FAILED || state === JobState.CANCELLED;
}
