import { ModelLoadError } from "./errors.ts";

/** HF `architectures` values the engine runs, and the family each maps to. */
export const SUPPORTED_ARCHITECTURES = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "mistral",
  Qwen2ForCausalLM: "qwen2",
  Qwen3ForCausalLM: "qwen3",
} as const;

/** A supported model family. */
export type ModelFamily = (typeof SUPPORTED_ARCHITECTURES)[keyof typeof SUPPORTED_ARCHITECTURES];

/** RoPE frequency scaling, as named by HF `rope_scaling.rope_type`. */
export type RopeScaling =
  | { readonly type: "default" }
  | {
      readonly type: "llama3";
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    }
  | {
      readonly type: "yarn";
      readonly factor: number;
      readonly originalMaxPositionEmbeddings: number;
      readonly betaFast: number;
      readonly betaSlow: number;
      readonly attentionFactor: number | undefined;
      readonly mscale: number | undefined;
      readonly mscaleAllDim: number | undefined;
      readonly truncate: boolean;
    }
  | { readonly type: "linear"; readonly factor: number };

/** Everything the graph builder needs from config.json, validated. */
export interface ModelSpec {
  readonly architecture: keyof typeof SUPPORTED_ARCHITECTURES;
  readonly family: ModelFamily;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (qwen2, or llama with `attention_bias`). */
  readonly qkvBias: boolean;
  /** o_proj carries a bias (llama with `attention_bias`). */
  readonly oBias: boolean;
  /** Per-head RMSNorm on q and k before RoPE (qwen3). */
  readonly qkNorm: boolean;
  /** Attention window in tokens, or undefined for full attention. */
  readonly slidingWindow: number | undefined;
  readonly eosTokenIds: readonly number[];
  readonly bosTokenId: number | undefined;
}

type Json = Record<string, unknown>;

function num(cfg: Json, key: string, where: string): number {
  const v = cfg[key];
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new ModelLoadError(`${where}: "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function posInt(cfg: Json, key: string, where: string): number {
  const v = num(cfg, key, where);
  if (!Number.isInteger(v) || v <= 0)
    throw new ModelLoadError(`${where}: "${key}" must be a positive integer, got ${v}`);
  return v;
}

function optNum(cfg: Json, key: string): number | undefined {
  const v = cfg[key];
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function parseRope(cfg: Json, where: string): { theta: number; scaling: RopeScaling } {
  // transformers 5 writes `rope_parameters` (theta inside); 4.x writes `rope_theta` + `rope_scaling`.
  const params = (cfg.rope_parameters ?? cfg.rope_scaling ?? null) as Json | null;
  const theta = optNum(params ?? {}, "rope_theta") ?? optNum(cfg, "rope_theta") ?? 10000;
  if (params === null) return { theta, scaling: { type: "default" } };
  const type = (params.rope_type ?? params.type ?? "default") as string;
  const rw = `${where}: rope scaling "${type}"`;
  switch (type) {
    case "default":
      return { theta, scaling: { type: "default" } };
    case "linear":
      return { theta, scaling: { type: "linear", factor: num(params, "factor", rw) } };
    case "llama3":
      return {
        theta,
        scaling: {
          type: "llama3",
          factor: num(params, "factor", rw),
          lowFreqFactor: num(params, "low_freq_factor", rw),
          highFreqFactor: num(params, "high_freq_factor", rw),
          originalMaxPositionEmbeddings: num(params, "original_max_position_embeddings", rw),
        },
      };
    case "yarn": {
      const original =
        optNum(params, "original_max_position_embeddings") ??
        num(cfg, "max_position_embeddings", rw);
      return {
        theta,
        scaling: {
          type: "yarn",
          factor: optNum(params, "factor") ?? num(cfg, "max_position_embeddings", rw) / original,
          originalMaxPositionEmbeddings: original,
          betaFast: optNum(params, "beta_fast") || 32,
          betaSlow: optNum(params, "beta_slow") || 1,
          attentionFactor: optNum(params, "attention_factor"),
          mscale: optNum(params, "mscale"),
          mscaleAllDim: optNum(params, "mscale_all_dim"),
          truncate: params.truncate !== false,
        },
      };
    }
    default:
      throw new ModelLoadError(
        `${where}: rope scaling type "${type}" is not supported (default, linear, llama3, yarn)`,
      );
  }
}

/**
 * Validates an HF config.json object and extracts the model shape. Throws
 * {@link ModelLoadError} naming the supported architectures when the model is not one of them.
 */
export function parseModelConfig(cfg: Json, where = "config.json"): ModelSpec {
  const archs = cfg.architectures;
  const arch = Array.isArray(archs) && typeof archs[0] === "string" ? archs[0] : undefined;
  if (arch === undefined || !Object.hasOwn(SUPPORTED_ARCHITECTURES, arch))
    throw new ModelLoadError(
      `${where}: architecture ${JSON.stringify(arch ?? null)} is not supported; supported: ${Object.keys(SUPPORTED_ARCHITECTURES).join(", ")}`,
    );
  const architecture = arch as keyof typeof SUPPORTED_ARCHITECTURES;
  const family = SUPPORTED_ARCHITECTURES[architecture];
  const hiddenSize = posInt(cfg, "hidden_size", where);
  const numHeads = posInt(cfg, "num_attention_heads", where);
  const numKvHeads =
    cfg.num_key_value_heads === undefined || cfg.num_key_value_heads === null
      ? numHeads
      : posInt(cfg, "num_key_value_heads", where);
  if (numHeads % numKvHeads !== 0)
    throw new ModelLoadError(
      `${where}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`,
    );
  const headDim =
    typeof cfg.head_dim === "number" ? posInt(cfg, "head_dim", where) : hiddenSize / numHeads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0)
    throw new ModelLoadError(`${where}: head_dim ${headDim} must be an even integer`);
  if (optNum(cfg, "partial_rotary_factor") !== undefined && cfg.partial_rotary_factor !== 1)
    throw new ModelLoadError(
      `${where}: partial_rotary_factor ${String(cfg.partial_rotary_factor)} is not supported (only 1)`,
    );
  const act = cfg.hidden_act ?? "silu";
  if (act !== "silu")
    throw new ModelLoadError(`${where}: hidden_act "${String(act)}" is not supported (only silu)`);
  if (cfg.mlp_bias === true) throw new ModelLoadError(`${where}: mlp_bias is not supported`);
  const { theta, scaling } = parseRope(cfg, where);
  const attentionBias = cfg.attention_bias === true;
  let slidingWindow: number | undefined;
  if (family === "mistral" && typeof cfg.sliding_window === "number")
    slidingWindow = cfg.sliding_window;
  if ((family === "qwen2" || family === "qwen3") && cfg.use_sliding_window === true)
    throw new ModelLoadError(`${where}: use_sliding_window is not supported for ${family}`);
  const eos = cfg.eos_token_id;
  const eosTokenIds = Array.isArray(eos)
    ? eos.filter((x): x is number => typeof x === "number")
    : typeof eos === "number"
      ? [eos]
      : [];
  return {
    architecture,
    family,
    hiddenSize,
    intermediateSize: posInt(cfg, "intermediate_size", where),
    numLayers: posInt(cfg, "num_hidden_layers", where),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: posInt(cfg, "vocab_size", where),
    rmsNormEps: num(cfg, "rms_norm_eps", where),
    ropeTheta: theta,
    ropeScaling: scaling,
    maxPositionEmbeddings: posInt(cfg, "max_position_embeddings", where),
    tieWordEmbeddings: cfg.tie_word_embeddings === true,
    qkvBias: family === "qwen2" || attentionBias,
    oBias: family !== "qwen2" && attentionBias,
    qkNorm: family === "qwen3",
    slidingWindow,
    eosTokenIds,
    bosTokenId: optNum(cfg, "bos_token_id"),
  };
}
