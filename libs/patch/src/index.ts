export {
  type DirectionFileOptions,
  type Directions,
  MAX_DIRECTION_FILE_BYTES,
  makeDirections,
  parseDirectionFile,
} from "./direction.ts";
export { PatchError } from "./errors.ts";
export type { EditStats, PatchMethod } from "./kernels.ts";
export {
  createLocalOutput,
  createStoreOutput,
  type LocalOutputOptions,
  type OutputFolder,
  type OutputIo,
} from "./output.ts";
export {
  type AbliterationReport,
  DEFAULT_BUFFER_BYTES,
  DEFAULT_SHARDS_AT_ONCE,
  DEFAULT_SHARED_BUFFER_BYTES,
  type PatchEvent,
  type PatchOptions,
  patchCheckpoint,
  REPORT_NAME,
  type TensorReport,
} from "./patch-checkpoint.ts";
export {
  buildPlan,
  DEFAULT_STRENGTH,
  type EditOp,
  lambdaAt,
  type PatchPlan,
  type PlanOptions,
  type Strength,
  validateStrength,
} from "./plan.ts";
