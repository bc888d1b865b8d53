export { createSchedulerHandlers, type SchedulerHandlerOptions } from "./scheduler-handlers.ts";
export {
  getSweep,
  isFinished,
  SWEEPS_BUCKET,
  type SweepRecord,
  type SweepState,
  type SweepStepRecord,
  updateSweep,
} from "./sweep-records.ts";
export { createSweepRuns, type SweepRuns, type SweepRunsOptions } from "./sweep-runs.ts";
