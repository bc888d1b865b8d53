export {
  type ChatMessage,
  type ChatTemplate,
  ChatTemplateError,
  type ChatTemplateOptions,
  type ChatTemplateTokens,
  compileChatTemplate,
  MAX_CHAT_TEMPLATE_CHARS,
} from "./chat-template.ts";
export {
  type BatchStats,
  ContinuousBatch,
  type FinishedSequence,
  KV_SLOT_CHUNK,
  MAX_PREFILL_BATCH_TOKENS,
  type SequenceRequest,
  type SequenceToken,
  SOLO_PREFILL_TOKENS,
} from "./continuous-batch.ts";
export {
  type CapturedResidual,
  type CaptureOptions,
  type CapturePositions,
  type CaptureResult,
  DEFAULT_PREFIX_CACHE_BYTES,
  drain,
  type Engine,
  type EngineProgress,
  type FinishReason,
  type ForwardResult,
  type GeneratedSequence,
  type GeneratedToken,
  type GenerateEvent,
  type GenerateOptions,
  type LoadModelOptions,
  loadModel,
  loadModelWithTokenizer,
} from "./engine.ts";
export { EngineRequestError, ModelLoadError } from "./errors.ts";
export {
  type ModelFamily,
  type ModelSpec,
  parseModelConfig,
  type RopeScaling,
  SUPPORTED_ARCHITECTURES,
} from "./model-config.ts";
export { type Intervention, WeightShapeError } from "./model-graph.ts";
export {
  createOpenAIServer,
  DEFAULT_CHAT_MAX_TOKENS,
  DEFAULT_COMPLETION_MAX_TOKENS,
  MAX_BODY_BYTES,
  MAX_STOP_STRINGS,
  MAX_TOP_LOGPROBS,
  type OpenAIServer,
  type OpenAIServerOptions,
  type ServedModel,
} from "./openai-server.ts";
export {
  commonPrefix,
  PREFIX_BLOCK_TOKENS,
  PrefixCache,
  type PrefixCacheStats,
} from "./prefix-cache.ts";
export { createRng, type SamplingOptions, type TokenLogprob } from "./sampling.ts";
export {
  type ChatEncoding,
  type DecodeOptions,
  type EncodeOptions,
  type LoadedTokenizer,
  loadTokenizer,
  MAX_TOKENIZER_CONFIG_BYTES,
  MAX_TOKENIZER_JSON_BYTES,
  TokenizerLoadError,
} from "./tokenizer.ts";
