import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import { type FolderBytes, openShardedSafetensors } from "@abl/tensor";
import * as ort from "onnxruntime-node";
import {
  ContinuousBatch,
  type FinishReason,
  type RunStep,
  type StepRequest,
} from "./continuous-batch.ts";
import { EngineRequestError, ModelLoadError } from "./errors.ts";
import { type ModelSpec, parseModelConfig } from "./model-config.ts";
import {
  buildModelGraph,
  GraphNames,
  type Intervention,
  type WeightSource,
} from "./model-graph.ts";
import { encodeOnnxModel } from "./onnx-proto.ts";
import { PREFIX_BLOCK_TOKENS, PrefixCache, type PrefixCacheStats } from "./prefix-cache.ts";
import { type SamplingOptions, type TokenLogprob, validateSampling } from "./sampling.ts";
import { type LoadedTokenizer, loadTokenizer } from "./tokenizer.ts";

/** Default intra-op threads: the development machines have 2 cores (reference/machine.md). */
const DEFAULT_THREADS = 2;
/**
 * Default RoPE table length when the config allows more: 8192 positions × head_dim floats ×2
 * tables is a few MB, and longer prompts than this are not a CPU workload.
 */
const DEFAULT_MAX_POSITIONS = 8192;
/** protobuf messages are limited to 2 GiB; the graph carries its weights inline. */
const MAX_MODEL_BYTES = 2 ** 31 - 1;
/** Additive attention bias for masked keys: float32's lowest value, as transformers uses. */
const MASKED = -3.4028234663852886e38;
/**
 * Default prefix-cache size per loaded model. SmolLM2-135M keeps 46 KiB of K/V per token, so
 * 1 GiB holds about 23k tokens: the conversations of a dozen concurrent agent trials at ~1.5k
 * tokens each, plus their shared system prompt.
 */
export const DEFAULT_PREFIX_CACHE_BYTES = 1024 ** 3;

/**
 * One graph run at a time in this process, whichever engine it belongs to: every session uses
 * all the cores (intra-op threads = cores), and two sessions running at once (base and
 * abliterated served side by side) oversubscribe them; onnxruntime's per-op barriers then wait
 * for descheduled threads.
 */
let runTail: Promise<unknown> = Promise.resolve();
function exclusive<T>(fn: () => Promise<T>): Promise<T> {
  const result = runTail.then(fn, fn);
  runTail = result.catch(() => undefined);
  return result;
}

/** Options for {@link loadModel}. */
export interface LoadModelOptions {
  /** Inference-time intervention baked into this engine's graph. */
  readonly intervention?: Intervention;
  /** Longest sequence (prompt + generated tokens); default min(config, 8192). */
  readonly maxPositions?: number;
  /** onnxruntime intra-op threads (default 2). */
  readonly threads?: number;
  /**
   * Bytes of K/V kept for reuse by later requests that share a token prefix (default
   * {@link DEFAULT_PREFIX_CACHE_BYTES}; 0 turns prefix caching off). Outputs are the same either
   * way.
   */
  readonly prefixCacheBytes?: number;
  /**
   * Prompts are prefilled in blocks of this many positions and prefix-cache hits are whole
   * blocks (default {@link PREFIX_BLOCK_TOKENS}), so outputs do not depend on the cache's state.
   */
  readonly prefixBlockTokens?: number;
  /** Let idle onnxruntime threads spin (faster on a dedicated machine; default false). */
  readonly spinThreads?: boolean;
  /**
   * onnxruntime execution providers in order of preference (default `["cpu"]`); e.g.
   * `["cuda", "cpu"]` where onnxruntime-node was installed with its CUDA binaries.
   */
  readonly executionProviders?: readonly string[];
  readonly signal?: AbortSignal;
  /**
   * The folder held in memory (a model just downloaded), every file by name: nothing is read
   * from `dir`, which only names the model in messages. F32 weights are used without a copy.
   */
  readonly files?: FolderBytes;
}

/** Logits and residual stream of one prompt from {@link Engine.forward}. */
export interface ForwardResult {
  /** `[S, V]` row-major. */
  readonly logits: Float32Array;
  /** `[layers+1, S, D]`: embedding output, then every block's output. */
  readonly hidden: Float32Array;
}

/** Which positions {@link Engine.capture} returns. */
export type CapturePositions = "last" | { readonly from: readonly number[] };

/** Options for {@link Engine.capture}. */
export interface CaptureOptions {
  readonly prompts: readonly (readonly number[])[];
  /** "last": the last prompt token; `{from}`: every position from `from[i]` to the end of prompt i. */
  readonly positions: CapturePositions;
  /** Prompts per forward pass (default 8). */
  readonly batchSize?: number;
  readonly signal?: AbortSignal;
}

/** Residual stream of one prompt at the captured positions. */
export interface CapturedResidual {
  readonly positions: readonly number[];
  /** `[layers+1, positions.length, D]` float32. */
  readonly residual: Float32Array;
}

/** Progress of a long engine operation. */
export type EngineProgress = {
  readonly type: "progress";
  readonly done: number;
  readonly total: number;
};

/** Result of {@link Engine.capture}. */
export interface CaptureResult {
  /** layers + 1 */
  readonly layers: number;
  readonly hiddenSize: number;
  readonly items: readonly CapturedResidual[];
}

/** Options for {@link Engine.generate}; per-prompt values may be given as arrays. */
export interface GenerateOptions {
  readonly prompts: readonly (readonly number[])[];
  readonly maxTokens: number | readonly number[];
  readonly sampling?: SamplingOptions | readonly SamplingOptions[];
  /** Token ids that end a sequence, in addition to the model's eos ids. */
  readonly stopTokenIds?: readonly number[];
  /** Do not stop at the model's eos ids (benchmarks generate a fixed number of tokens). */
  readonly ignoreEos?: boolean;
  /** Strings that end a sequence (matched on the decoded text; needs `decode`). */
  readonly stop?: readonly string[] | readonly (readonly string[])[];
  /** Token ids → text, for stop strings and the returned text. */
  readonly decode?: (ids: readonly number[]) => string;
  /** Return log-probabilities with this many top alternatives per token (0 = only the chosen). */
  readonly logprobs?: number | undefined;
  readonly signal?: AbortSignal;
}

/** One generated token of one prompt. */
export interface GeneratedToken {
  readonly index: number;
  readonly token: number;
  readonly logprob?: { readonly logprob: number; readonly top: readonly TokenLogprob[] };
}

/** Events of {@link Engine.generate}: after every decoding step, the tokens it produced. */
export type GenerateEvent =
  | { readonly type: "tokens"; readonly tokens: readonly GeneratedToken[] }
  | EngineProgress;

export type { FinishReason } from "./continuous-batch.ts";

/** One finished sequence. */
export interface GeneratedSequence {
  readonly tokens: readonly number[];
  readonly finishReason: FinishReason;
  /** Decoded text (with a matched stop string cut off) when `decode` was given. */
  readonly text?: string;
  readonly logprobs?: readonly {
    readonly logprob: number;
    readonly top: readonly TokenLogprob[];
  }[];
  readonly promptTokens: number;
}

/** A loaded model ready to run. */
export interface Engine {
  readonly spec: ModelSpec;
  readonly dir: string;
  readonly maxPositions: number;
  /** The folder's tokenizer and chat template, when it has a tokenizer.json. */
  readonly tokenizer: LoadedTokenizer | undefined;
  /** Logits and residual stream at every position of every prompt (batched, padded). */
  forward(
    prompts: readonly (readonly number[])[],
    opts?: { padding?: "left" | "right"; signal?: AbortSignal },
  ): Promise<ForwardResult[]>;
  /** Residual stream capture in batches; yields progress, returns the residuals. */
  capture(opts: CaptureOptions): AsyncGenerator<EngineProgress, CaptureResult>;
  /**
   * Batched generation with a KV cache (and the prefix cache unless `prefixCache: false`);
   * yields each step's tokens, returns the sequences.
   */
  generate(
    opts: GenerateOptions & { readonly prefixCache?: boolean },
  ): AsyncGenerator<GenerateEvent, GeneratedSequence[]>;
  /**
   * A continuous batch on this engine (sequences join and leave between steps), for servers.
   * Uses the engine's prefix cache unless `prefixCache: false`.
   */
  createBatch(opts: {
    readonly stopTokenIds: ReadonlySet<number>;
    readonly decode?: ((ids: readonly number[]) => string) | undefined;
    readonly prefixCache?: boolean;
  }): ContinuousBatch;
  /** Counters of the prefix cache (all zero when it is off). */
  prefixCacheStats(): PrefixCacheStats;
  dispose(): Promise<void>;
}

/** Reads config.json and the safetensors weights of an HF folder, builds the graph, starts onnxruntime. */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<Engine> {
  const cfgPath = join(dir, "config.json");
  let cfgText: string;
  try {
    if (!opts.files) cfgText = await readFile(cfgPath, "utf8");
    else {
      const held = opts.files.get("config.json");
      if (!held) throw new Error("config.json is not among the model's files");
      cfgText = new TextDecoder().decode(held);
    }
  } catch (err) {
    throw new ModelLoadError(`cannot read ${cfgPath}`, { cause: err });
  }
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(cfgText) as Record<string, unknown>;
  } catch (err) {
    throw new ModelLoadError(`${cfgPath} is not valid JSON`, { cause: err });
  }
  const spec = parseModelConfig(cfg, cfgPath);
  const maxPositions =
    opts.maxPositions ?? Math.min(spec.maxPositionEmbeddings, DEFAULT_MAX_POSITIONS);
  if (!Number.isInteger(maxPositions) || maxPositions < 2)
    throw new ModelLoadError(`maxPositions must be an integer >= 2, got ${maxPositions}`);
  const threads = opts.threads ?? DEFAULT_THREADS;

  const st = await openShardedSafetensors(dir, opts.signal, opts.files);
  const weights = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  try {
    for (const [name, { info }] of st.tensors) {
      opts.signal?.throwIfAborted();
      if (name.endsWith("rotary_emb.inv_freq")) continue;
      weights.set(name, { shape: info.shape, data: await st.tensor(name, opts.signal) });
    }
  } finally {
    await st.close();
  }
  const source: WeightSource = { get: (n) => weights.get(n) };
  let bytes: Uint8Array;
  try {
    bytes = encodeOnnxModel(
      buildModelGraph(spec, source, { maxPositions, intervention: opts.intervention }),
    );
  } catch (err) {
    throw new ModelLoadError(`${dir}: ${(err as Error).message}`, { cause: err });
  }
  weights.clear();
  if (bytes.length > MAX_MODEL_BYTES)
    throw new ModelLoadError(
      `${dir}: the graph is ${bytes.length} bytes, above protobuf's ${MAX_MODEL_BYTES}-byte limit for inline weights`,
    );
  if (
    opts.prefixCacheBytes !== undefined &&
    (!Number.isSafeInteger(opts.prefixCacheBytes) || opts.prefixCacheBytes < 0)
  )
    throw new ModelLoadError(
      `prefixCacheBytes must be a byte count >= 0, got ${opts.prefixCacheBytes}`,
    );
  let cache: PrefixCache;
  try {
    cache = new PrefixCache(
      { layers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim },
      opts.prefixCacheBytes ?? DEFAULT_PREFIX_CACHE_BYTES,
      opts.prefixBlockTokens ?? PREFIX_BLOCK_TOKENS,
    );
  } catch (err) {
    throw new ModelLoadError((err as Error).message, { cause: err });
  }
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: [...(opts.executionProviders ?? ["cpu"])],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
    executionMode: "sequential",
    // Spinning worker threads burn the cores other processes (and our other thread) need on a
    // shared 2-core machine: measured 2× slower prefill and decode with spinning under load.
    extra: { session: { intra_op: { allow_spinning: opts.spinThreads ? "1" : "0" } } },
  });
  const hasTokenizer = opts.files
    ? opts.files.has("tokenizer.json")
    : await access(join(dir, "tokenizer.json")).then(
        () => true,
        () => false,
      );
  const tokenizer = hasTokenizer ? await loadTokenizer(dir, opts.files) : undefined;
  return new OrtEngine(spec, dir, maxPositions, session, tokenizer, cache);
}

/**
 * The engine of `dir` with its tokenizer: the one {@link loadModel} loaded with it, so the
 * tokenizer is parsed once (a folder without tokenizer.json fails as {@link loadTokenizer} does).
 */
export async function loadModelWithTokenizer(
  dir: string,
  opts: LoadModelOptions = {},
): Promise<{ engine: Engine; tokenizer: LoadedTokenizer }> {
  const engine = await loadModel(dir, opts);
  if (engine.tokenizer) return { engine, tokenizer: engine.tokenizer };
  try {
    return { engine, tokenizer: await loadTokenizer(dir, opts.files) };
  } catch (err) {
    await engine.dispose();
    throw err;
  }
}

/** One graph run's inputs, as {@link StepRequest} plus what forward/capture gather. */
interface RunInput extends Omit<StepRequest, "logitsIndex"> {
  readonly logitsIndex: BigInt64Array;
  readonly logitsPerRow: number;
}

class OrtEngine implements Engine {
  constructor(
    readonly spec: ModelSpec,
    readonly dir: string,
    readonly maxPositions: number,
    private readonly session: ort.InferenceSession,
    readonly tokenizer: LoadedTokenizer | undefined,
    private readonly cache: PrefixCache,
  ) {}

  async dispose(): Promise<void> {
    this.cache.clear();
    await this.session.release();
  }

  prefixCacheStats(): PrefixCacheStats {
    return this.cache.stats();
  }

  /** Additive bias `[B, 1, G*S, T]`: a query sees keys at positions <= its own (and in the window). */
  private bias(inp: RunInput): Float32Array {
    const { batch: B, seq: S, past: P } = inp;
    const T = P + S;
    const G = this.spec.numHeads / this.spec.numKvHeads;
    const win = this.spec.slidingWindow;
    const out = new Float32Array(B * G * S * T);
    for (let b = 0; b < B; b++) {
      const row = out.subarray(b * G * S * T, (b + 1) * G * S * T);
      for (let s = 0; s < S; s++) {
        const base = s * T;
        // Padding queries (position of a pad) still need one visible key; they see their own slot.
        const q = Number(inp.positions[b * S + s]);
        const own = inp.keyPos[b * T + P + s] as number;
        for (let t = 0; t < T; t++) {
          const k = inp.keyPos[b * T + t] as number;
          const ok =
            (k >= 0 && own >= 0 && k <= q && (win === undefined || q - k < win)) ||
            (own < 0 && t === P + s);
          row[base + t] = ok ? 0 : MASKED;
        }
      }
      for (let gi = 1; gi < G; gi++) row.copyWithin(gi * S * T, 0, S * T);
    }
    return out;
  }

  /** Runs the graph (one run at a time per process, see {@link exclusive}). */
  private run(
    inp: RunInput,
    fetch: { logits: boolean; kv: boolean; hidden: boolean; hiddenAt?: boolean },
  ) {
    const { spec } = this;
    const { batch: B, seq: S, past: P } = inp;
    const G = spec.numHeads / spec.numKvHeads;
    const KV = spec.numKvHeads;
    const hd = spec.headDim;
    const feeds: Record<string, ort.Tensor> = {
      [GraphNames.inputIds]: new ort.Tensor("int64", inp.ids, [B, S]),
      [GraphNames.positionIds]: new ort.Tensor("int64", inp.positions, [B, S]),
      [GraphNames.attnBias]: new ort.Tensor("float32", this.bias(inp), [B, 1, G * S, P + S]),
      [GraphNames.logitsIndex]: new ort.Tensor("int64", inp.logitsIndex, [B, inp.logitsPerRow]),
    };
    const empty = new Float32Array(0);
    for (let l = 0; l < spec.numLayers; l++) {
      feeds[GraphNames.pastKey(l)] = new ort.Tensor("float32", inp.pastKv[2 * l] ?? empty, [
        B,
        KV,
        P,
        hd,
      ]);
      feeds[GraphNames.pastValue(l)] = new ort.Tensor("float32", inp.pastKv[2 * l + 1] ?? empty, [
        B,
        KV,
        P,
        hd,
      ]);
    }
    const names: string[] = [];
    if (fetch.logits) names.push(GraphNames.logits);
    if (fetch.kv)
      for (let l = 0; l < spec.numLayers; l++)
        names.push(GraphNames.presentKey(l), GraphNames.presentValue(l));
    if (fetch.hidden) for (let i = 0; i <= spec.numLayers; i++) names.push(GraphNames.hidden(i));
    if (fetch.hiddenAt)
      for (let i = 0; i <= spec.numLayers; i++) names.push(GraphNames.hiddenAt(i));
    return exclusive(async () => {
      const started = performance.now();
      const out = await this.session.run(feeds, names);
      return { out, ms: performance.now() - started };
    });
  }

  /** One generation step for {@link ContinuousBatch}: logits at one position per row, new K/V. */
  private readonly runStep: RunStep = async (req) => {
    const { out, ms } = await this.run(
      { ...req, logitsPerRow: 1 },
      { logits: true, kv: true, hidden: false },
    );
    const kv: Float32Array[] = [];
    for (let l = 0; l < this.spec.numLayers; l++)
      kv.push(
        out[GraphNames.presentKey(l)]?.data as Float32Array,
        out[GraphNames.presentValue(l)]?.data as Float32Array,
      );
    return { logits: out[GraphNames.logits]?.data as Float32Array, kv, runMs: ms };
  };

  createBatch(opts: {
    readonly stopTokenIds: ReadonlySet<number>;
    readonly decode?: ((ids: readonly number[]) => string) | undefined;
    readonly prefixCache?: boolean;
  }): ContinuousBatch {
    return new ContinuousBatch(this.spec, this.maxPositions, this.runStep, {
      stopTokenIds: opts.stopTokenIds,
      decode: opts.decode,
      prefixCache: opts.prefixCache === false ? undefined : this.cache,
      blockTokens: this.cache.block,
    });
  }

  private checkPrompts(prompts: readonly (readonly number[])[]): void {
    if (prompts.length === 0) throw new EngineRequestError("no prompts");
    prompts.forEach((p, i) => {
      if (p.length === 0) throw new EngineRequestError(`prompt ${i} is empty`);
      if (p.length > this.maxPositions)
        throw new EngineRequestError(
          `prompt ${i} has ${p.length} tokens, longer than the context of ${this.maxPositions}`,
        );
      for (const t of p)
        if (!Number.isInteger(t) || t < 0 || t >= this.spec.vocabSize)
          throw new EngineRequestError(
            `prompt ${i} has token id ${t} outside the vocabulary 0..${this.spec.vocabSize - 1}`,
          );
    });
  }

  /** Packs prompts into one padded batch. */
  private pack(prompts: readonly (readonly number[])[], padding: "left" | "right") {
    const B = prompts.length;
    const S = Math.max(...prompts.map((p) => p.length));
    const ids = new BigInt64Array(B * S);
    const positions = new BigInt64Array(B * S);
    const keyPos = new Int32Array(B * S).fill(-1);
    const offsets: number[] = [];
    prompts.forEach((p, b) => {
      const off = padding === "left" ? S - p.length : 0;
      offsets.push(off);
      for (let i = 0; i < p.length; i++) {
        ids[b * S + off + i] = BigInt(p[i] as number);
        positions[b * S + off + i] = BigInt(i);
        keyPos[b * S + off + i] = i;
      }
    });
    return { B, S, ids, positions, keyPos, offsets };
  }

  async forward(
    prompts: readonly (readonly number[])[],
    opts: { padding?: "left" | "right"; signal?: AbortSignal } = {},
  ): Promise<ForwardResult[]> {
    this.checkPrompts(prompts);
    opts.signal?.throwIfAborted();
    const { spec } = this;
    const D = spec.hiddenSize;
    const V = spec.vocabSize;
    const L1 = spec.numLayers + 1;
    const { B, S, ids, positions, keyPos, offsets } = this.pack(prompts, opts.padding ?? "right");
    const logitsIndex = new BigInt64Array(B * S);
    for (let i = 0; i < B * S; i++) logitsIndex[i] = BigInt(i % S);
    const { out } = await this.run(
      {
        batch: B,
        seq: S,
        ids,
        positions,
        keyPos,
        past: 0,
        logitsIndex,
        logitsPerRow: S,
        pastKv: [],
      },
      { logits: true, kv: false, hidden: true },
    );
    const logits = out[GraphNames.logits]?.data as Float32Array;
    const hidden = Array.from(
      { length: L1 },
      (_, i) => out[GraphNames.hidden(i)]?.data as Float32Array,
    );
    return prompts.map((p, b) => {
      const n = p.length;
      const off = offsets[b] as number;
      const h = new Float32Array(L1 * n * D);
      for (let l = 0; l < L1; l++)
        h.set(
          (hidden[l] as Float32Array).subarray((b * S + off) * D, (b * S + off + n) * D),
          l * n * D,
        );
      return { logits: logits.slice((b * S + off) * V, (b * S + off + n) * V), hidden: h };
    });
  }

  async *capture(opts: CaptureOptions): AsyncGenerator<EngineProgress, CaptureResult> {
    const { prompts, positions } = opts;
    this.checkPrompts(prompts);
    const batchSize = opts.batchSize ?? 8;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new EngineRequestError(`batchSize must be a positive integer, got ${batchSize}`);
    if (positions !== "last") {
      if (positions.from.length !== prompts.length)
        throw new EngineRequestError(
          `positions.from has ${positions.from.length} entries for ${prompts.length} prompts`,
        );
      positions.from.forEach((f, i) => {
        const n = (prompts[i] as readonly number[]).length;
        if (!Number.isInteger(f) || f < 0 || f >= n)
          throw new EngineRequestError(
            `positions.from[${i}] = ${f} is outside prompt ${i} (0..${n - 1})`,
          );
      });
    }
    const D = this.spec.hiddenSize;
    const L1 = this.spec.numLayers + 1;
    // Similar lengths together keep padding small; results go back in prompt order.
    const order = prompts
      .map((_, i) => i)
      .sort((a, b) => (prompts[a] as number[]).length - (prompts[b] as number[]).length);
    const items: CapturedResidual[] = new Array(prompts.length);
    let done = 0;
    for (let start = 0; start < order.length; start += batchSize) {
      opts.signal?.throwIfAborted();
      const idx = order.slice(start, start + batchSize);
      const batch = idx.map((i) => prompts[i] as readonly number[]);
      const { B, S, ids, positions: pos, keyPos } = this.pack(batch, "right");
      // Gather only the captured positions inside the graph: K per row, short rows repeat
      // their last position (dropped below).
      const spans = idx.map((pi) => {
        const n = (prompts[pi] as readonly number[]).length;
        const from = positions === "last" ? n - 1 : (positions.from[pi] as number);
        return { from, count: n - from };
      });
      const K = Math.max(...spans.map((sp) => sp.count));
      const at = new BigInt64Array(B * K);
      spans.forEach((sp, b) => {
        for (let k = 0; k < K; k++) at[b * K + k] = BigInt(sp.from + Math.min(k, sp.count - 1));
      });
      const { out } = await this.run(
        {
          batch: B,
          seq: S,
          ids,
          positions: pos,
          keyPos,
          past: 0,
          logitsIndex: at,
          logitsPerRow: K,
          pastKv: [],
        },
        { logits: false, kv: false, hidden: false, hiddenAt: true },
      );
      const hidden = Array.from(
        { length: L1 },
        (_, i) => out[GraphNames.hiddenAt(i)]?.data as Float32Array,
      );
      idx.forEach((pi, b) => {
        const { from, count } = spans[b] as { from: number; count: number };
        const residual = new Float32Array(L1 * count * D);
        for (let l = 0; l < L1; l++)
          residual.set(
            (hidden[l] as Float32Array).subarray(b * K * D, (b * K + count) * D),
            l * count * D,
          );
        items[pi] = { positions: Array.from({ length: count }, (_, j) => from + j), residual };
      });
      done += idx.length;
      yield { type: "progress", done, total: prompts.length };
    }
    return { layers: L1, hiddenSize: D, items };
  }

  async *generate(
    opts: GenerateOptions & { readonly prefixCache?: boolean },
  ): AsyncGenerator<GenerateEvent, GeneratedSequence[]> {
    const { prompts } = opts;
    this.checkPrompts(prompts);
    const n = prompts.length;
    const perRow = <T>(v: T | readonly T[], what: string): T[] => {
      if (Array.isArray(v)) {
        if (v.length !== n)
          throw new EngineRequestError(`${what} has ${v.length} entries for ${n} prompts`);
        return [...v] as T[];
      }
      return Array.from({ length: n }, () => v as T);
    };
    const maxTokens = perRow(opts.maxTokens, "maxTokens");
    maxTokens.forEach((m, i) => {
      if (!Number.isInteger(m) || m < 1)
        throw new EngineRequestError(`maxTokens[${i}] must be a positive integer, got ${m}`);
    });
    const sampling = perRow<SamplingOptions>(opts.sampling ?? {}, "sampling");
    sampling.forEach(validateSampling);
    const stops: (readonly string[])[] =
      opts.stop === undefined
        ? Array.from({ length: n }, () => [])
        : opts.stop.length > 0 && Array.isArray(opts.stop[0])
          ? perRow(opts.stop as readonly (readonly string[])[], "stop")
          : Array.from({ length: n }, () => opts.stop as readonly string[]);
    if (stops.some((s) => s.length > 0) && !opts.decode)
      throw new EngineRequestError("stop strings need a decode function");
    const topLogprobs = opts.logprobs;
    if (
      topLogprobs !== undefined &&
      (!Number.isInteger(topLogprobs) || topLogprobs < 0 || topLogprobs > 20)
    )
      throw new EngineRequestError(`logprobs must be an integer in 0..20, got ${topLogprobs}`);
    const stopTokenIds = new Set([
      ...(opts.ignoreEos ? [] : this.spec.eosTokenIds),
      ...(opts.stopTokenIds ?? []),
    ]);
    const batch = this.createBatch({
      stopTokenIds,
      decode: opts.decode,
      ...(opts.prefixCache !== undefined ? { prefixCache: opts.prefixCache } : {}),
    });
    const results: GeneratedSequence[] = new Array(n);
    let events: GeneratedToken[] = [];
    prompts.forEach((prompt, i) => {
      batch.add({
        prompt,
        maxTokens: Math.min(maxTokens[i] as number, this.maxPositions),
        sampling: sampling[i] as SamplingOptions,
        stop: stops[i] as readonly string[],
        logprobs: topLogprobs,
        onToken: (t) => events.push({ index: i, ...t }),
        onFinish: (s) => {
          results[i] = s;
        },
      });
    });
    while (batch.size > 0) {
      await batch.step(opts.signal);
      if (events.length > 0) {
        const tokens = events;
        events = [];
        yield { type: "tokens", tokens };
      }
    }
    return results;
  }
}

/** Runs an engine async generator to the end, passing each event to `onEvent`, and returns its result. */
export async function drain<E, R>(gen: AsyncGenerator<E, R>, onEvent?: (e: E) => void): Promise<R> {
  for (;;) {
    const r = await gen.next();
    if (r.done) return r.value;
    onEvent?.(r.value);
  }
}
