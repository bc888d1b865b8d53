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
  ActivationsError,
  ContrastSetError,
  DirectionsError,
  EndpointResponseError,
  EndpointUnavailableError,
} from "./errors.ts";
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
