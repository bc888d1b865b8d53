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
  convertGguf,
  convertGgufToHf,
  GGUF_CONVERT_MAX_SHARD_BYTES,
  GGUF_SUPPORTED_ARCHITECTURES,
  type GgufConvertDType,
  GgufConvertError,
  type GgufConvertEvent,
  type GgufConvertOptions,
  type GgufConvertResult,
  ggufTensorNameToHf,
  ggufToHfConfig,
  inferLlama3RopeScaling,
  unpermuteRows,
} from "./gguf-convert.ts";
export { dequantizeGgml } from "./gguf-dequantize.ts";
export {
  GGUF_SUPPORTED_TYPES,
  type GgmlSupportedType,
  type GgmlTypeInfo,
  ggmlTypeInfo,
} from "./gguf-ggml-types.ts";
export {
  GGUF_MAX_ARRAY_DEPTH,
  GGUF_MAX_ARRAY_LENGTH,
  GGUF_MAX_DIMS,
  GGUF_MAX_HEADER_BYTES,
  GGUF_MAX_METADATA_COUNT,
  GGUF_MAX_STRING_BYTES,
  GGUF_MAX_TENSOR_COUNT,
  GgufFormatError,
  type GgufHeader,
  type GgufTensorInfo,
  GgufUnsupportedTypeError,
  type GgufValue,
  readGgufHeader,
  readGgufHeaderFrom,
  readGgufTensorBytes,
} from "./gguf-reader.ts";
export {
  GGUF_SUPPORTED_PRE_TOKENIZERS,
  GgufTokenizerError,
  mergesFromScores,
  type RebuiltTokenizer,
  rebuildGgufTokenizer,
} from "./gguf-tokenizer.ts";
export {
  cachedHubCommit,
  downloadHubModel,
  HUB_DEFAULT_ATTEMPTS,
  HUB_DEFAULT_ENDPOINT,
  HUB_DEFAULT_RETRY_DELAY_MS,
  HUB_MAX_API_RESPONSE_BYTES,
  HUB_MAX_FILES,
  HUB_MAX_REDIRECTS,
  HUB_MAX_RETRY_DELAY_MS,
  HUB_MAX_TREE_PAGES,
  HubAuthError,
  type HubDownloadOptions,
  HubError,
  type HubEvent,
  type HubFile,
  HubIntegrityError,
  type HubModelSpec,
  HubNotFoundError,
  hubOptionsFromEnv,
  hubRepoCacheDir,
  isCheckpointFile,
  parseHubSpec,
} from "./hub.ts";
export { type ResolveModelOptions, resolveModel } from "./hub-resolve-model.ts";
export {
  architectureOf,
  candidateWriters,
  type ResidualWriter,
  type ResolveWritersOptions,
  resolveWriters,
} from "./resolve-writers.ts";
