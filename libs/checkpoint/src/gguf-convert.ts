/**
 * GGUF → Hugging Face checkpoint folder: safetensors weights (dequantized, stored as f32 by
 * default), `config.json`, `generation_config.json`, `tokenizer.json` and `tokenizer_config.json`
 * (with the chat template), rebuilt from the GGUF metadata.
 *
 * Streamed: one tensor is dequantized, reordered and written at a time. The folder is built under
 * a temporary sibling name and renamed into place last, so a crash never leaves a folder that
 * looks complete.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  createFileSink,
  createSafetensorsWriter,
  encodeFromF32,
  encodeShardIndex,
  type FloatDType,
  SHARD_INDEX_NAME,
  SINGLE_FILE_NAME,
  type TensorSpec,
} from "@abl/tensor";
import { dequantizeGgml } from "./gguf-dequantize.ts";
import {
  assertGgufTensorSupported,
  GgufFormatError,
  type GgufHeader,
  type GgufTensorInfo,
  ggufNumber,
  ggufOptionalNumber,
  ggufOptionalString,
  readGgufHeaderFrom,
  readGgufTensorBytes,
} from "./gguf-reader.ts";
import { rebuildGgufTokenizer } from "./gguf-tokenizer.ts";

/**
 * Largest safetensors shard written; bigger checkpoints are split with an index, as
 * `save_pretrained` does with its 5 GB default (keeps each file under common upload limits).
 */
export const GGUF_CONVERT_MAX_SHARD_BYTES = 5 * 1000 * 1000 * 1000;

/** A GGUF whose architecture or tensors cannot be mapped to a Hugging Face checkpoint. */
export class GgufConvertError extends Error {
  override readonly name = "GgufConvertError";
}

/** Storage dtype of the converted weights. */
export type GgufConvertDType = "f32" | "bf16" | "f16";

/** Options of {@link convertGguf}. */
export interface GgufConvertOptions {
  /** Storage dtype of the weights (default f32: exact for every supported quantization). */
  readonly dtype?: GgufConvertDType;
  readonly signal?: AbortSignal;
  /** Largest shard in bytes (default {@link GGUF_CONVERT_MAX_SHARD_BYTES}). */
  readonly maxShardBytes?: number;
}

/** Progress of a conversion: one event per tensor written. */
export type GgufConvertEvent = {
  readonly type: "tensor";
  readonly name: string;
  readonly index: number;
  readonly count: number;
};

/** What a conversion produced. */
export interface GgufConvertResult {
  readonly outDir: string;
  readonly architecture: string;
  readonly tensorCount: number;
  readonly files: readonly string[];
}

interface ArchSpec {
  readonly hfClass: string;
  readonly modelType: string;
  /** llama.cpp interleaves the rotary halves of q/k rows for these (see `unpermuteRows`). */
  readonly permutedQK: boolean;
  readonly extraConfig: Readonly<Record<string, unknown>>;
}

/** GGUF `general.architecture` values that can be converted, and their HF counterparts. */
const ARCHITECTURES: Readonly<Record<string, ArchSpec>> = {
  llama: {
    hfClass: "LlamaForCausalLM",
    modelType: "llama",
    permutedQK: true,
    extraConfig: { attention_bias: false, mlp_bias: false },
  },
  mistral: {
    hfClass: "MistralForCausalLM",
    modelType: "mistral",
    permutedQK: true,
    extraConfig: { sliding_window: null },
  },
  qwen2: {
    hfClass: "Qwen2ForCausalLM",
    modelType: "qwen2",
    permutedQK: false,
    extraConfig: { use_sliding_window: false },
  },
  qwen3: {
    hfClass: "Qwen3ForCausalLM",
    modelType: "qwen3",
    permutedQK: false,
    extraConfig: { attention_bias: false },
  },
};

/** The GGUF architectures {@link convertGguf} accepts. */
export const GGUF_SUPPORTED_ARCHITECTURES: readonly string[] = Object.keys(ARCHITECTURES);

/** Per-block GGUF tensor suffix → HF suffix under `model.layers.N.`. */
const BLOCK_NAMES: Readonly<Record<string, string>> = {
  "attn_norm.weight": "input_layernorm.weight",
  "attn_q.weight": "self_attn.q_proj.weight",
  "attn_q.bias": "self_attn.q_proj.bias",
  "attn_k.weight": "self_attn.k_proj.weight",
  "attn_k.bias": "self_attn.k_proj.bias",
  "attn_v.weight": "self_attn.v_proj.weight",
  "attn_v.bias": "self_attn.v_proj.bias",
  "attn_output.weight": "self_attn.o_proj.weight",
  "attn_q_norm.weight": "self_attn.q_norm.weight",
  "attn_k_norm.weight": "self_attn.k_norm.weight",
  "ffn_norm.weight": "post_attention_layernorm.weight",
  "ffn_gate.weight": "mlp.gate_proj.weight",
  "ffn_up.weight": "mlp.up_proj.weight",
  "ffn_down.weight": "mlp.down_proj.weight",
};

const GLOBAL_NAMES: Readonly<Record<string, string>> = {
  "token_embd.weight": "model.embed_tokens.weight",
  "output_norm.weight": "model.norm.weight",
  "output.weight": "lm_head.weight",
};

/** The HF name of GGUF tensor `name`, or throws naming it. */
export function ggufTensorNameToHf(name: string): string {
  const g = GLOBAL_NAMES[name];
  if (g) return g;
  const m = /^blk\.(\d+)\.(.+)$/.exec(name);
  const suffix = m ? BLOCK_NAMES[m[2]!] : undefined;
  if (!m || !suffix)
    throw new GgufConvertError(`tensor "${name}" has no Hugging Face counterpart known here`);
  return `model.layers.${m[1]}.${suffix}`;
}

/**
 * Undoes llama.cpp's q/k row permutation. Its converter reorders each head's rows from HF's
 * "first half, second half" rotary layout to interleaved pairs: HF row (s·half + i) of a head
 * becomes GGUF row (2·i + s). `rows × cols` row-major data, `heads` heads of equal size.
 */
export function unpermuteRows(
  data: Float32Array,
  rows: number,
  cols: number,
  heads: number,
): Float32Array {
  if (rows % (2 * heads) !== 0) {
    throw new GgufConvertError(`cannot unpermute ${rows} rows into ${heads} heads of even size`);
  }
  const headDim = rows / heads;
  const half = headDim / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let i = 0; i < half; i++) {
        const hfRow = h * headDim + s * half + i;
        const ggRow = h * headDim + 2 * i + s;
        out.set(data.subarray(ggRow * cols, (ggRow + 1) * cols), hfRow * cols);
      }
    }
  }
  return out;
}

function storageDType(d: GgufConvertDType): FloatDType {
  return d === "f32" ? "F32" : d === "bf16" ? "BF16" : "F16";
}

function torchDType(d: GgufConvertDType): string {
  return d === "f32" ? "float32" : d === "bf16" ? "bfloat16" : "float16";
}

/** llama.cpp's tensor of per-frequency rope divisors, written for llama3-style rope scaling. */
const ROPE_FREQS = "rope_freqs.weight";

/**
 * Parameter sets of llama3-style rope scaling to recognise: GGUF keeps only the resulting
 * per-frequency divisors (rope_freqs), not these. Every Llama 3.1/3.2/3.3 release uses low 1,
 * high 4, original context 8192; the factor is read off the largest divisor.
 */
const LLAMA3_ROPE_CANDIDATES = [{ low: 1, high: 4, original: 8192 }] as const;

/**
 * Recovers HF's `rope_scaling` (rope_type llama3) from llama.cpp's rope_freqs: recomputes the
 * divisors each known parameter set implies (the smooth ramp between the low- and high-frequency
 * wavelengths of Llama 3.1) and returns the set that reproduces them, or throws.
 */
export function inferLlama3RopeScaling(
  freqs: Float32Array,
  theta: number,
  ropeDims: number,
): Record<string, unknown> {
  if (freqs.length !== ropeDims / 2) {
    throw new GgufConvertError(
      `${ROPE_FREQS} has ${freqs.length} values; ${ropeDims} rotary dims need ${ropeDims / 2}`,
    );
  }
  const factor = Math.max(...freqs);
  for (const c of LLAMA3_ROPE_CANDIDATES) {
    const lowWavelen = c.original / c.low;
    const highWavelen = c.original / c.high;
    let ok = true;
    for (let i = 0; i < freqs.length && ok; i++) {
      const inv = 1 / theta ** ((2 * i) / ropeDims);
      const wavelen = (2 * Math.PI) / inv;
      let want: number;
      if (wavelen < highWavelen) want = 1;
      else if (wavelen > lowWavelen) want = factor;
      else {
        const smooth = (c.original / wavelen - c.low) / (c.high - c.low);
        want = 1 / ((1 - smooth) / factor + smooth);
      }
      // Both sides went through f32 in places; 1e-5 relative separates parameter sets easily.
      ok = Math.abs(freqs[i]! - want) <= 1e-5 * Math.max(1, Math.abs(want));
    }
    if (ok) {
      return {
        rope_type: "llama3",
        factor,
        low_freq_factor: c.low,
        high_freq_factor: c.high,
        original_max_position_embeddings: c.original,
      };
    }
  }
  throw new GgufConvertError(
    `${ROPE_FREQS} matches no known llama3 rope scaling (factor ${factor}; tried low/high/original ${LLAMA3_ROPE_CANDIDATES.map((c) => `${c.low}/${c.high}/${c.original}`).join(", ")})`,
  );
}

/**
 * Builds `config.json` from the GGUF metadata and tensor shapes. `ropeFreqs` are the values of
 * rope_freqs.weight, needed when the file has one (llama3 rope scaling).
 */
export function ggufToHfConfig(
  header: GgufHeader,
  dtype: GgufConvertDType = "f32",
  ropeFreqs?: Float32Array,
): Record<string, unknown> {
  const arch = ggufOptionalString(header, "general.architecture");
  const spec = arch === undefined ? undefined : ARCHITECTURES[arch];
  if (!arch || !spec) {
    throw new GgufConvertError(
      `architecture "${arch ?? "(missing)"}" is not supported (supported: ${GGUF_SUPPORTED_ARCHITECTURES.join(", ")})`,
    );
  }
  const k = (key: string) => `${arch}.${key}`;
  const hidden = ggufNumber(header, k("embedding_length"));
  const heads = ggufNumber(header, k("attention.head_count"));
  const kvHeads = ggufOptionalNumber(header, k("attention.head_count_kv")) ?? heads;
  const headDim = ggufOptionalNumber(header, k("attention.key_length")) ?? hidden / heads;
  if (!Number.isInteger(headDim)) {
    throw new GgufConvertError(
      `hidden size ${hidden} is not divisible by ${heads} heads and no key_length is given`,
    );
  }
  const embed = header.tensors.find((t) => t.name === "token_embd.weight");
  if (embed?.dims.length !== 2 || embed.dims[0] !== hidden) {
    throw new GgufConvertError(
      `token_embd.weight ${embed ? `has dims [${embed.dims.join(", ")}]` : "is missing"}; expected [${hidden}, vocab]`,
    );
  }
  const vocab = embed.dims[1]!;
  const tied = !header.tensors.some((t) => t.name === "output.weight");
  const config: Record<string, unknown> = {
    architectures: [spec.hfClass],
    model_type: spec.modelType,
    hidden_size: hidden,
    intermediate_size: ggufNumber(header, k("feed_forward_length")),
    num_hidden_layers: ggufNumber(header, k("block_count")),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    hidden_act: "silu",
    max_position_embeddings: ggufNumber(header, k("context_length")),
    rms_norm_eps: ggufNumber(header, k("attention.layer_norm_rms_epsilon")),
    rope_theta: ggufOptionalNumber(header, k("rope.freq_base")) ?? 10000,
    vocab_size: vocab,
    tie_word_embeddings: tied,
    attention_dropout: 0,
    initializer_range: 0.02,
    use_cache: true,
    torch_dtype: torchDType(dtype),
    ...spec.extraConfig,
  };
  const scaling = ggufOptionalString(header, k("rope.scaling.type"));
  if (scaling !== undefined && scaling !== "none") {
    const factor = ggufNumber(header, k("rope.scaling.factor"));
    if (scaling === "linear") config.rope_scaling = { rope_type: "linear", factor };
    else if (scaling === "yarn") {
      config.rope_scaling = {
        rope_type: "yarn",
        factor,
        original_max_position_embeddings: ggufNumber(
          header,
          k("rope.scaling.original_context_length"),
        ),
      };
    } else {
      throw new GgufConvertError(
        `rope scaling "${scaling}" is not supported (supported: linear, yarn)`,
      );
    }
  } else {
    config.rope_scaling = null;
  }
  const hasRopeFreqs = header.tensors.some((t) => t.name === ROPE_FREQS);
  if (hasRopeFreqs && !ropeFreqs) {
    throw new GgufConvertError(
      `${ROPE_FREQS} is present: pass its values to recover the llama3 rope scaling`,
    );
  }
  if (hasRopeFreqs && ropeFreqs) {
    const ropeDims = ggufOptionalNumber(header, k("rope.dimension_count")) ?? headDim;
    config.rope_scaling = inferLlama3RopeScaling(ropeFreqs, config.rope_theta as number, ropeDims);
  }
  const bos = ggufOptionalNumber(header, "tokenizer.ggml.bos_token_id");
  const eos = ggufOptionalNumber(header, "tokenizer.ggml.eos_token_id");
  if (bos !== undefined) config.bos_token_id = bos;
  if (eos !== undefined) config.eos_token_id = eos;
  return config;
}

interface PlannedTensor {
  readonly info: GgufTensorInfo;
  readonly hfName: string;
  readonly shape: readonly number[];
  /** Heads to unpermute rows by, when this is a llama-family q or k projection. */
  readonly unpermuteHeads: number | undefined;
}

function plan(
  header: GgufHeader,
  config: Record<string, unknown>,
  permutedQK: boolean,
): PlannedTensor[] {
  const heads = config.num_attention_heads as number;
  const kvHeads = config.num_key_value_heads as number;
  const layers = config.num_hidden_layers as number;
  return header.tensors.flatMap((info) => {
    if (info.name === ROPE_FREQS) return []; // folded into config.rope_scaling
    assertGgufTensorSupported(info);
    const hfName = ggufTensorNameToHf(info.name);
    const layer = /^blk\.(\d+)\./.exec(info.name);
    if (layer && Number(layer[1]) >= layers) {
      throw new GgufConvertError(
        `tensor "${info.name}" belongs to layer ${layer[1]} but the model has ${layers} layers`,
      );
    }
    let unpermuteHeads: number | undefined;
    if (permutedQK && /\.attn_q\.(weight|bias)$/.test(info.name)) unpermuteHeads = heads;
    if (permutedQK && /\.attn_k\.(weight|bias)$/.test(info.name)) unpermuteHeads = kvHeads;
    return [{ info, hfName, shape: [...info.dims].reverse(), unpermuteHeads }];
  });
}

/** Splits tensors, in order, into shards of at most `maxBytes` (a bigger tensor gets its own). */
function shard(
  tensors: readonly PlannedTensor[],
  bytesPer: number,
  maxBytes: number,
): PlannedTensor[][] {
  const shards: PlannedTensor[][] = [];
  let current: PlannedTensor[] = [];
  let size = 0;
  for (const t of tensors) {
    const n = t.info.elements * bytesPer;
    if (current.length > 0 && size + n > maxBytes) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += n;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Converts the GGUF file at `ggufPath` into a Hugging Face checkpoint folder at `outDir`, which
 * must not exist yet. Yields one event per tensor written and returns what it wrote.
 */
export async function* convertGguf(
  ggufPath: string,
  outDir: string,
  options: GgufConvertOptions = {},
): AsyncGenerator<GgufConvertEvent, GgufConvertResult> {
  const dtype = options.dtype ?? "f32";
  if (!["f32", "bf16", "f16"].includes(dtype)) {
    throw new GgufConvertError(`dtype "${dtype}" is not one of f32, bf16, f16`);
  }
  const maxShardBytes = options.maxShardBytes ?? GGUF_CONVERT_MAX_SHARD_BYTES;
  const signal = options.signal;
  const exists = await stat(outDir).then(
    () => true,
    () => false,
  );
  if (exists) throw new GgufConvertError(`output folder ${outDir} already exists`);
  const fh = await open(ggufPath, "r");
  const tmp = join(
    dirname(outDir),
    `.${basename(outDir)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
  let published = false;
  try {
    const header = await readGgufHeaderFrom(fh);
    const freqsInfo = header.tensors.find((t) => t.name === ROPE_FREQS);
    let ropeFreqs: Float32Array | undefined;
    if (freqsInfo) {
      assertGgufTensorSupported(freqsInfo);
      ropeFreqs = dequantizeGgml(
        freqsInfo.type.name,
        await readGgufTensorBytes(fh, freqsInfo),
        freqsInfo.elements,
      );
    }
    const config = ggufToHfConfig(header, dtype, ropeFreqs);
    const arch = header.metadata.get("general.architecture") as string;
    const tensors = plan(header, config, ARCHITECTURES[arch]!.permutedQK);
    const tokenizer = rebuildGgufTokenizer(header, config.max_position_embeddings as number);
    if ((config.vocab_size as number) < countTokens(header)) {
      throw new GgufConvertError(
        `the vocabulary has ${countTokens(header)} tokens but token_embd.weight has only ${config.vocab_size as number} rows`,
      );
    }
    await mkdir(tmp, { recursive: true });
    const sdtype = storageDType(dtype);
    const bytesPer = sdtype === "F32" ? 4 : 2;
    const shards = shard(tensors, bytesPer, maxShardBytes);
    const fileNames =
      shards.length === 1
        ? [SINGLE_FILE_NAME]
        : shards.map(
            (_, i) =>
              `model-${String(i + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`,
          );
    const weightMap = new Map<string, string>();
    let index = 0;
    for (let s = 0; s < shards.length; s++) {
      const specs: TensorSpec[] = shards[s]!.map((t) => ({
        name: t.hfName,
        dtype: sdtype,
        shape: t.shape,
      }));
      const sink = await createFileSink(join(tmp, fileNames[s]!), { durable: false });
      const writer = await createSafetensorsWriter(sink, specs, { format: "pt" }, signal);
      try {
        for (const t of shards[s]!) {
          signal?.throwIfAborted();
          let values = dequantizeGgml(
            t.info.type.name,
            await readGgufTensorBytes(fh, t.info),
            t.info.elements,
          );
          if (t.unpermuteHeads !== undefined) {
            const cols = t.shape.length === 2 ? t.shape[1]! : 1;
            values = unpermuteRows(values, t.shape[0]!, cols, t.unpermuteHeads);
          }
          const bytes = new Uint8Array(values.length * bytesPer);
          encodeFromF32(sdtype, values, bytes, values.length);
          await writer.write(bytes, signal);
          weightMap.set(t.hfName, fileNames[s]!);
          yield { type: "tensor", name: t.hfName, index: index++, count: tensors.length };
        }
      } catch (err) {
        await writer.abort();
        throw err;
      }
      await writer.finish();
    }
    if (shards.length > 1) {
      const total = tensors.reduce((n, t) => n + t.info.elements * bytesPer, 0);
      await writeFile(join(tmp, SHARD_INDEX_NAME), encodeShardIndex(weightMap, total));
    }
    await writeJson(join(tmp, "config.json"), config);
    const generation: Record<string, unknown> = { _from_model_config: true };
    if (tokenizer.bosTokenId !== undefined) generation.bos_token_id = tokenizer.bosTokenId;
    if (tokenizer.eosTokenId !== undefined) generation.eos_token_id = tokenizer.eosTokenId;
    if (tokenizer.padTokenId !== undefined) generation.pad_token_id = tokenizer.padTokenId;
    await writeJson(join(tmp, "generation_config.json"), generation);
    await writeFile(join(tmp, "tokenizer.json"), JSON.stringify(tokenizer.tokenizerJson));
    await writeJson(join(tmp, "tokenizer_config.json"), tokenizer.tokenizerConfig);
    signal?.throwIfAborted();
    await mkdir(dirname(outDir), { recursive: true });
    await rename(tmp, outDir);
    published = true;
    const files = [
      ...fileNames,
      ...(shards.length > 1 ? [SHARD_INDEX_NAME] : []),
      "config.json",
      "generation_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
    ];
    return { outDir, architecture: arch, tensorCount: tensors.length, files };
  } finally {
    await fh.close();
    if (!published) await rm(tmp, { recursive: true, force: true });
  }
}

function countTokens(header: GgufHeader): number {
  const v = header.metadata.get("tokenizer.ggml.tokens");
  if (!Array.isArray(v)) throw new GgufFormatError('metadata "tokenizer.ggml.tokens" is missing');
  return v.length;
}

/** Runs {@link convertGguf} to completion, passing each event to `onEvent`. */
export async function convertGgufToHf(
  ggufPath: string,
  outDir: string,
  options: GgufConvertOptions & { readonly onEvent?: (e: GgufConvertEvent) => void } = {},
): Promise<GgufConvertResult> {
  const it = convertGguf(ggufPath, outDir, options);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
    options.onEvent?.(r.value);
  }
}
