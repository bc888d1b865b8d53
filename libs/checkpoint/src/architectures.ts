/**
 * Architecture adapters, kept as data: for each family, which tensors write into the residual
 * stream, what kind of writer each is, and which axis holds the hidden (residual) dimension.
 * Names are matched anywhere after a dot so that multimodal wrappers (`model.language_model.…`,
 * `language_model.model.…`) work unchanged.
 */

/** Edit target sets a user can select. */
export const WRITER_TARGETS = ["embed", "attn_out", "mlp_out", "experts", "bias"] as const;
/** One of {@link WRITER_TARGETS}. */
export type WriterTarget = (typeof WRITER_TARGETS)[number];

/**
 * One kind of residual writer. `residualAxis` is counted from the end: -2 for `[…, hidden, in]`
 * matrices (`nn.Linear` weights, W ← W − λ r rᵀW), -1 when the hidden axis is last (embeddings,
 * gpt-oss fused experts `[experts, ff, hidden]`, biases; E ← E − λ (E r) rᵀ).
 */
export interface WriterRule {
  /** Regular expression source matched against the tensor name; a `layer` group gives the layer. */
  readonly pattern: string;
  readonly target: WriterTarget;
  readonly residualAxis: -1 | -2;
}

/** The writer rules of one architecture family and the `model_type`s it covers. */
export interface ArchitectureAdapter {
  readonly name: string;
  readonly modelTypes: readonly string[];
  readonly rules: readonly WriterRule[];
}

const L = String.raw`(?:^|\.)layers\.(?<layer>\d+)\.`;

const EMBED: WriterRule = {
  pattern: String.raw`(?:^|\.)embed_tokens\.weight$`,
  target: "embed",
  residualAxis: -1,
};
const O_PROJ: WriterRule = {
  pattern: `${L}self_attn\\.o_proj\\.weight$`,
  target: "attn_out",
  residualAxis: -2,
};
const O_PROJ_BIAS: WriterRule = {
  pattern: `${L}self_attn\\.o_proj\\.bias$`,
  target: "bias",
  residualAxis: -1,
};
const DOWN: WriterRule = {
  pattern: `${L}mlp\\.down_proj\\.weight$`,
  target: "mlp_out",
  residualAxis: -2,
};
const DOWN_BIAS: WriterRule = {
  pattern: `${L}mlp\\.down_proj\\.bias$`,
  target: "bias",
  residualAxis: -1,
};
const EXPERT_DOWN: WriterRule = {
  pattern: `${L}mlp\\.experts\\.\\d+\\.down_proj\\.weight$`,
  target: "experts",
  residualAxis: -2,
};
const SHARED_EXPERT_DOWN: WriterRule = {
  pattern: `${L}mlp\\.shared_experts?\\.down_proj\\.weight$`,
  target: "experts",
  residualAxis: -2,
};
/** transformers ≥ 5 fuses routed experts into one `[experts, hidden, ff]` parameter. */
const FUSED_EXPERT_DOWN: WriterRule = {
  pattern: `${L}mlp\\.experts\\.down_proj$`,
  target: "experts",
  residualAxis: -2,
};
const LINEAR_ATTN_OUT: WriterRule = {
  pattern: `${L}linear_attn\\.out_proj\\.weight$`,
  target: "attn_out",
  residualAxis: -2,
};

const DENSE = [EMBED, O_PROJ, O_PROJ_BIAS, DOWN, DOWN_BIAS];
const MOE = [...DENSE, EXPERT_DOWN, SHARED_EXPERT_DOWN, FUSED_EXPERT_DOWN];

/** Every built-in adapter. */
export const ARCHITECTURES: readonly ArchitectureAdapter[] = [
  {
    name: "llama",
    modelTypes: ["llama", "mistral", "qwen2", "qwen3", "granite", "phi3", "olmo2"],
    rules: DENSE,
  },
  { name: "gemma", modelTypes: ["gemma", "gemma2", "gemma3", "gemma3_text"], rules: DENSE },
  { name: "qwen-moe", modelTypes: ["qwen2_moe", "qwen3_moe", "mixtral_hf"], rules: MOE },
  {
    name: "qwen-hybrid",
    modelTypes: ["qwen3_next", "qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text"],
    rules: [...MOE, LINEAR_ATTN_OUT],
  },
  {
    name: "gpt-oss",
    modelTypes: ["gpt_oss"],
    rules: [
      EMBED,
      O_PROJ,
      O_PROJ_BIAS,
      // Fused experts keep the hidden axis last: down_proj is [experts, ff, hidden].
      { pattern: `${L}mlp\\.experts\\.down_proj$`, target: "experts", residualAxis: -1 },
      { pattern: `${L}mlp\\.experts\\.down_proj_bias$`, target: "bias", residualAxis: -1 },
    ],
  },
];

/** The adapter for `modelType`, or undefined. */
export function findArchitecture(modelType: string): ArchitectureAdapter | undefined {
  return ARCHITECTURES.find((a) => a.modelTypes.includes(modelType));
}
