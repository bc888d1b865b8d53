export {
  ARCHITECTURES,
  type ArchitectureAdapter,
  findArchitecture,
  WRITER_TARGETS,
  type WriterRule,
  type WriterTarget,
} from "./architectures.ts";
export {
  type Checkpoint,
  type CheckpointShard,
  LM_HEAD_NAME,
  loadCheckpoint,
  MAX_CONFIG_BYTES,
  MAX_INDEX_FILE_BYTES,
} from "./checkpoint.ts";
export {
  type CheckpointFile,
  type CheckpointFiles,
  localCheckpointFiles,
  storeByteSource,
  storeCheckpointFiles,
} from "./checkpoint-files.ts";
export { type ModelConfig, parseModelConfig, untieConfig } from "./config.ts";
export { CheckpointError, UnknownArchitectureError } from "./errors.ts";
export {
  architectureOf,
  candidateWriters,
  type ResidualWriter,
  type ResolveWritersOptions,
  resolveWriters,
} from "./resolve-writers.ts";
