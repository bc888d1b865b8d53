export {
  type Activations,
  type ActivationsMeta,
  type BucketResiduals,
  type CapturedPrompts,
  type CaptureEngineName,
  MAX_ACTIVATIONS_BYTES,
  MAX_PROMPTS_JSON_BYTES,
  publishActivations,
  RESIDUALS_TENSOR,
  type ReadActivationsOptions,
  readActivations,
  residualsFileSize,
  residualsSafetensors,
} from "./activations-artifact.ts";
export {
  type BuiltinCapturerOptions,
  type CausalProbeOptions,
  createBuiltinCapturer,
  createCausalProbe,
  createEngineEndpoint,
  createPromptRenderer,
  DEFAULT_CAPTURE_BATCH,
} from "./builtin-engine.ts";
export {
  type CapturedBatch,
  type CaptureJobOptions,
  type CaptureProgress,
  type ResidualCapturer,
  runCapture,
} from "./capture-job.ts";
export {
  type BuiltinModel,
  CAPTURE_CODE_VERSION,
  type CaptureRunOptions,
  type CaptureRunResult,
  captureActivations,
  captureStepKey,
} from "./capture-run.ts";
export { capContrastSet, MAX_SPEC_BYTES, resolveContrastSet } from "./contrast-arg.ts";
export {
  BUCKETS,
  type Bucket,
  type ChatMessage,
  type ContrastPrompt,
  type ContrastSet,
  promptMessages,
  promptsDigest,
} from "./contrast-set.ts";
export {
  type ContrastSpec,
  loadContrastSet,
  type PromptSourceSpec,
  parseContrastSpec,
  presetSpec,
  validateContrastSpec,
} from "./contrast-spec.ts";
export {
  computeDirections,
  type DirectionMethod,
  type DirectionOptions,
  type Directions,
  directionAt,
  directionRow,
  meanAt,
} from "./direction-math.ts";
export {
  DIRECTIONS_TENSOR,
  type DirectionsMeta,
  decodeDirections,
  encodeDirections,
  MAX_DIRECTIONS_BYTES,
  publishDirections,
  readDirections,
} from "./directions-artifact.ts";
export {
  type DirectionsJobOptions,
  type DirectionsProgress,
  runDirections,
} from "./directions-job.ts";
export {
  computeDirectionsStep,
  DIRECTIONS_CODE_VERSION,
  type DirectionsRunOptions,
  directionsStepKey,
} from "./directions-run.ts";
export {
  ActivationsError,
  ContrastSetError,
  DirectionsError,
  EndpointResponseError,
  EndpointUnavailableError,
  ModelCacheError,
} from "./errors.ts";
export {
  createLlmJudge,
  createMarkerJudge,
  DEFAULT_REFUSAL_MARKERS,
  JUDGE_RESPONSE_CHARS,
  normalizeResponse,
  type RefusalJudge,
  type Verdict,
} from "./judges.ts";
export { KL_PROBABILITY_FLOOR, klTopLogprobs, type PromptKl, sharedPrefixKl } from "./kl.ts";
export {
  createKubeWorkerLauncher,
  DEFAULT_KUBE_CAPTURE_TIMEOUT_MS,
  type KubeWorkerLauncherOptions,
  MAX_KUBE_JOB_ENV_BYTES,
} from "./kube-worker-launcher.ts";
export {
  auc,
  aucBootstrapCi,
  cohensD,
  cosine,
  DEFAULT_BOOTSTRAP_RESAMPLES,
  formatRankingCsv,
  type LayerMetrics,
  type LayerMetricsOptions,
  layerMetrics,
  MAX_BOOTSTRAP_RESAMPLES,
  projections,
} from "./layer-metrics.ts";
export {
  type AblationProbe,
  type AblationProbeResult,
  candidateLayers,
  DEFAULT_CAUSAL_CANDIDATES,
  DEFAULT_CAUSAL_MAX_KL,
  EXCLUDED_TAIL_FRACTION,
  type LayerSelection,
  type SelectionPolicy,
  selectLayer,
} from "./layer-selection.ts";
export {
  createModelCache,
  DEFAULT_MODEL_CACHE_BYTES,
  MAX_MODEL_FILES,
  MODEL_CACHE_MARKER,
  type ModelCache,
  type ModelCacheOptions,
  type ModelLease,
} from "./model-cache.ts";
export { modelFolderDigest } from "./model-digest.ts";
export {
  type ChatCompletion,
  type ChatEndpoint,
  type ChatRequest,
  createChatEndpoint,
  DEFAULT_BACKOFF_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_RETRIES,
  type EndpointOptions,
  type GeneratedToken,
  MAX_BACKOFF_MS,
  MAX_RESPONSE_BYTES,
  type TokenLogprob,
} from "./openai-endpoint.ts";
export { AGENT_SHELL_SYSTEM_PROMPT } from "./presets/agent-shell.ts";
export { isPresetName, PRESET_NAMES, type PresetName, presetContrastSet } from "./presets/index.ts";
export {
  DEFAULT_HF_ENDPOINT,
  DEFAULT_PROMPT_COLUMNS,
  hfDatasetUrl,
  MAX_PROMPT_CHARS,
  MAX_SOURCE_BYTES,
  parseCsv,
  readPromptSource,
  type SourceContext,
  type SourceFormat,
  type SourceLocation,
  type SourceReadOptions,
} from "./prompt-sources.ts";
export { createRandom } from "./random.ts";
export { cohensKappa, type Rate, wilsonRate, Z_95 } from "./rates.ts";
export {
  type BehaviourFilterOptions,
  DEFAULT_EVAL_CONCURRENCY,
  DEFAULT_KL_TOKENS,
  DEFAULT_TOP_LOGPROBS,
  evaluateRefusal,
  filterByBehaviour,
  type JudgedSample,
  MIN_EVAL_TOKENS,
  type RefusalEvalEvent,
  type RefusalEvalOptions,
  type RefusalEvalReport,
  runRefusalEval,
} from "./refusal-eval.ts";
export {
  assertCompatible,
  assertLayer,
  createResiduals,
  type Residuals,
  residualAt,
} from "./residuals.ts";
export {
  type ContrastSplits,
  DEFAULT_SPLIT_FRACTIONS,
  SPLIT_NAMES,
  type SplitFractions,
  type SplitIndices,
  type SplitName,
  splitContrastSet,
} from "./splits.ts";
export {
  CAPTURE_WORKER_SCRIPT,
  createLocalWorkerLauncher,
  createTransformersCapturer,
  MAX_WORKER_LINE_CHARS,
  PRESIGN_EXPIRY_SECONDS,
  type TransformersCapturerOptions,
  type WorkerLauncher,
  type WorkerModel,
} from "./transformers-capturer.ts";
