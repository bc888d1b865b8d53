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
export { createRandom } from "./random.ts";
export {
  assertCompatible,
  assertLayer,
  createResiduals,
  type Residuals,
  residualAt,
} from "./residuals.ts";
