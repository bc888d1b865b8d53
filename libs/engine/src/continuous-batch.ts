/**
 * Continuous batching over a KV cache the engine owns: sequences join between decode steps
 * (their prompt is prefilled, reusing the longest cached prefix), every step feeds one token of
 * every running sequence, and finished sequences leave at once, their KV going to the prefix
 * cache. `Engine.generate` and the OpenAI server both run on this.
 */
import { EngineRequestError } from "./errors.ts";
import type { ModelSpec } from "./model-config.ts";
import type { PrefixCache, PrefixHit } from "./prefix-cache.ts";
import {
  createRng,
  type SamplingOptions,
  sampleToken,
  type TokenLogprob,
  tokenLogprobs,
  validateSampling,
} from "./sampling.ts";

/**
 * Slots of the batch KV buffer grow and shrink in steps of this many positions: each step's
 * attention runs over the whole capacity (unused slots masked), so capacity tracks the longest
 * sequence closely, and a re-layout happens once per this many generated tokens at most.
 */
export const KV_SLOT_CHUNK = 64;
/**
 * A prompt suffix at least this long is prefilled on its own: its matrix products are already
 * wide enough to be efficient, and it is not padded to another prompt's length.
 */
export const SOLO_PREFILL_TOKENS = 64;
/** Padded tokens (rows × longest suffix) of one batched prefill of short prompts. */
export const MAX_PREFILL_BATCH_TOKENS = 4096;

/** One graph run: new tokens of B rows on top of `past` cached positions. */
export interface StepRequest {
  readonly batch: number;
  readonly seq: number;
  /** `[B, S]` */
  readonly ids: BigInt64Array;
  /** `[B, S]` positions of the new tokens. */
  readonly positions: BigInt64Array;
  /** `[B, P + S]`: position of every key slot, -1 where the slot is empty (masked). */
  readonly keyPos: Int32Array;
  readonly past: number;
  /** `2 * layers` arrays `[B, kvHeads, P, headDim]` (K then V per layer). */
  readonly pastKv: readonly Float32Array[];
  /** `[B]`: which new position of each row gets logits. */
  readonly logitsIndex: BigInt64Array;
}

/** Output of one graph run. */
export interface StepResult {
  /** `[B, V]` */
  readonly logits: Float32Array;
  /** `2 * layers` arrays `[B, kvHeads, S, headDim]`: the new positions' K and V. */
  readonly kv: readonly Float32Array[];
  /** Milliseconds the graph ran (not counting any wait for another engine's run). */
  readonly runMs: number;
}

/** Runs the model graph once. */
export type RunStep = (req: StepRequest) => Promise<StepResult>;

/** Why a sequence ended. */
export type FinishReason = "stop" | "length";

/** One generated token. */
export interface SequenceToken {
  readonly token: number;
  readonly logprob?: { readonly logprob: number; readonly top: readonly TokenLogprob[] };
}

/** A finished sequence. */
export interface FinishedSequence {
  readonly tokens: readonly number[];
  readonly finishReason: FinishReason;
  readonly text?: string;
  readonly logprobs?: readonly {
    readonly logprob: number;
    readonly top: readonly TokenLogprob[];
  }[];
  readonly promptTokens: number;
}

/** A sequence to generate. */
export interface SequenceRequest {
  readonly prompt: readonly number[];
  readonly maxTokens: number;
  readonly sampling?: SamplingOptions;
  /** Strings that end the sequence (needs the batch's `decode`). */
  readonly stop?: readonly string[];
  /** Top alternatives per token to return log-probabilities for; undefined = none. */
  readonly logprobs?: number | undefined;
  /** Called with every generated token, as soon as it is sampled. */
  readonly onToken?: (t: SequenceToken) => void;
  /** Called once when the sequence ends. */
  readonly onFinish: (s: FinishedSequence) => void;
  /** Called with the logits each token was sampled from (tests compare them). */
  readonly onLogits?: (logits: Float32Array) => void;
}

/** Options shared by every sequence of a batch. */
export interface ContinuousBatchOptions {
  /** Token ids that end a sequence. */
  readonly stopTokenIds: ReadonlySet<number>;
  /** Token ids → text, for stop strings and the returned text. */
  readonly decode?: ((ids: readonly number[]) => string) | undefined;
  /** Reuse and fill this prefix cache; undefined = no prefix caching. */
  readonly prefixCache?: PrefixCache | undefined;
  /**
   * Prompts of at least {@link SOLO_PREFILL_TOKENS} are prefilled in blocks of this many
   * positions, cache hits being whole blocks (the cache's `block`), so results do not depend on
   * what was cached.
   */
  readonly blockTokens: number;
}

/** Counters of one batch, for metrics and benchmarks. */
export interface BatchStats {
  prefillRuns: number;
  prefillTokens: number;
  /** Prompt tokens whose KV was taken from the prefix cache. */
  cachedTokens: number;
  prefillMs: number;
  decodeSteps: number;
  /** Sum over decode steps of the rows decoded (÷ decodeSteps = mean batch size). */
  decodeRows: number;
  decodeMs: number;
}

interface Seq {
  readonly req: SequenceRequest;
  readonly rng: () => number;
  readonly tokens: number[];
  readonly lps: { logprob: number; top: TokenLogprob[] }[];
  finish: FinishReason | undefined;
  text: string | undefined;
  /** Row in the batch KV buffer, -1 before prefill. */
  row: number;
  /** Positions whose K/V are in the row (prompt + generated tokens fed back). */
  len: number;
}

/**
 * A batch that sequences join and leave between steps. Not safe for concurrent `step` calls;
 * the owner drives it (`Engine.generate` to completion, the server's scheduler forever).
 */
export class ContinuousBatch {
  private readonly pending: Seq[] = [];
  private readonly rows: Seq[] = [];
  private readonly kv: KvRows;
  readonly stats: BatchStats = {
    prefillRuns: 0,
    prefillTokens: 0,
    cachedTokens: 0,
    prefillMs: 0,
    decodeSteps: 0,
    decodeRows: 0,
    decodeMs: 0,
  };

  constructor(
    private readonly spec: ModelSpec,
    private readonly maxPositions: number,
    private readonly runStep: RunStep,
    private readonly options: ContinuousBatchOptions,
  ) {
    this.kv = new KvRows(2 * spec.numLayers, spec.numKvHeads, spec.headDim);
  }

  /** Sequences added and not finished yet. */
  get size(): number {
    return this.pending.length + this.rows.length;
  }

  /** Sequences decoding (prefilled and not finished). */
  get running(): number {
    return this.rows.length;
  }

  /** Adds a sequence; it is prefilled at the next {@link step}. Validates it first. */
  add(req: SequenceRequest): void {
    const { prompt } = req;
    if (prompt.length === 0) throw new EngineRequestError("prompt is empty");
    if (prompt.length > this.maxPositions)
      throw new EngineRequestError(
        `prompt has ${prompt.length} tokens; the context is ${this.maxPositions} tokens`,
      );
    for (const t of prompt)
      if (!Number.isInteger(t) || t < 0 || t >= this.spec.vocabSize)
        throw new EngineRequestError(
          `prompt has token id ${t} outside the vocabulary 0..${this.spec.vocabSize - 1}`,
        );
    if (!Number.isInteger(req.maxTokens) || req.maxTokens < 1)
      throw new EngineRequestError(
        `maxTokens must be a positive integer, got ${String(req.maxTokens)}`,
      );
    const sampling = req.sampling ?? {};
    validateSampling(sampling);
    if ((req.stop?.length ?? 0) > 0 && !this.options.decode)
      throw new EngineRequestError("stop strings need a decode function");
    const lp = req.logprobs;
    if (lp !== undefined && (!Number.isInteger(lp) || lp < 0 || lp > 20))
      throw new EngineRequestError(`logprobs must be an integer in 0..20, got ${lp}`);
    this.pending.push({
      req,
      rng: createRng(sampling.seed ?? Math.floor(Math.random() * 2 ** 32)),
      tokens: [],
      lps: [],
      finish: undefined,
      text: undefined,
      row: -1,
      len: 0,
    });
  }

  /** Drops every sequence without finishing it (after a failed step); returns their requests. */
  clear(): SequenceRequest[] {
    const all = [...this.pending, ...this.rows].map((s) => s.req);
    this.pending.length = 0;
    this.rows.length = 0;
    return all;
  }

  /**
   * One step: prefills the sequences added since the last step (each yields its first token),
   * then runs one decode step over every running sequence. Finished sequences leave the batch.
   */
  async step(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.pending.length > 0) await this.prefillPending(signal);
    if (this.rows.length > 0) await this.decode();
  }

  private async prefillPending(signal?: AbortSignal): Promise<void> {
    const cache = this.options.prefixCache;
    const waiting = this.pending.splice(0);
    const short: { seq: Seq; hit: undefined }[] = [];
    for (const seq of waiting) {
      signal?.throwIfAborted();
      const p = seq.req.prompt;
      // Looked up one by one: a prompt prefilled just before may already share this one's prefix.
      const hit = cache?.lookup(p, p.length - 1);
      if (hit || p.length >= SOLO_PREFILL_TOKENS) await this.prefillBlocks(seq, hit);
      else short.push({ seq, hit: undefined });
    }
    short.sort((a, b) => a.seq.req.prompt.length - b.seq.req.prompt.length);
    let group: { seq: Seq; hit: undefined }[] = [];
    for (const item of short) {
      const longest = item.seq.req.prompt.length;
      if (group.length > 0 && (group.length + 1) * longest > MAX_PREFILL_BATCH_TOKENS) {
        await this.prefill(group);
        group = [];
      }
      group.push(item);
    }
    if (group.length > 0) await this.prefill(group);
  }

  /**
   * Prefills one prompt block by block from its cached prefix (a whole number of blocks), each
   * block attending to the K/V of everything before it; the last block's logits give the first
   * token. The same blocks are run whether or not a prefix was cached.
   */
  private async prefillBlocks(seq: Seq, hit: PrefixHit | undefined): Promise<void> {
    const { spec } = this;
    const KV = spec.numKvHeads;
    const hd = spec.headDim;
    const prompt = seq.req.prompt;
    const n = prompt.length;
    const m = hit?.length ?? 0;
    const C = this.options.blockTokens;
    // The prompt's K/V as it is computed, `[KV, n, hd]` per layer (the cache's entry layout).
    const acc = Array.from({ length: this.kv.arrays }, () => new Float32Array(KV * n * hd));
    if (hit)
      for (let a = 0; a < this.kv.arrays; a++)
        copySlots(
          hit.entry.kv[a] as Float32Array,
          0,
          hit.entry.tokens.length,
          0,
          m,
          acc[a] as Float32Array,
          0,
          n,
          0,
          KV,
          hd,
        );
    let logits: Float32Array = new Float32Array(0);
    for (let start = m; start < n; start += C) {
      const S = Math.min(C, n - start);
      const pastKv = acc.map((a) => {
        const past = new Float32Array(KV * start * hd);
        copySlots(a, 0, n, 0, start, past, 0, start, 0, KV, hd);
        return past;
      });
      const ids = new BigInt64Array(S);
      const positions = new BigInt64Array(S);
      const keyPos = new Int32Array(start + S);
      for (let t = 0; t < start + S; t++) keyPos[t] = t;
      for (let i = 0; i < S; i++) {
        ids[i] = BigInt(prompt[start + i] as number);
        positions[i] = BigInt(start + i);
      }
      const out = await this.runStep({
        batch: 1,
        seq: S,
        ids,
        positions,
        keyPos,
        past: start,
        pastKv,
        logitsIndex: new BigInt64Array([BigInt(S - 1)]),
      });
      for (let a = 0; a < this.kv.arrays; a++)
        copySlots(
          out.kv[a] as Float32Array,
          0,
          S,
          0,
          S,
          acc[a] as Float32Array,
          0,
          n,
          start,
          KV,
          hd,
        );
      logits = out.logits;
      this.stats.prefillRuns++;
      this.stats.prefillMs += out.runMs;
    }
    this.stats.prefillTokens += n - m;
    this.stats.cachedTokens += m;
    this.options.prefixCache?.insert(prompt, (kv) => {
      for (let a = 0; a < this.kv.arrays; a++) (kv[a] as Float32Array).set(acc[a] as Float32Array);
    });
    if (!this.admit(seq, n, logits.subarray(0, spec.vocabSize))) return;
    for (let a = 0; a < this.kv.arrays; a++)
      copySlots(
        acc[a] as Float32Array,
        0,
        n,
        0,
        n,
        this.kv.data[a] as Float32Array,
        this.kv.rowBase(seq.row),
        this.kv.slots,
        0,
        KV,
        hd,
      );
  }

  /** Prefills a group: cached prefixes left-padded as the past, suffixes left-padded after it. */
  private async prefill(group: readonly { seq: Seq; hit: PrefixHit | undefined }[]): Promise<void> {
    const { spec } = this;
    const KV = spec.numKvHeads;
    const hd = spec.headDim;
    const B = group.length;
    const m = group.map((g) => g.hit?.length ?? 0);
    const s = group.map((g, b) => g.seq.req.prompt.length - (m[b] as number));
    const P = Math.max(...m);
    const S = Math.max(...s);
    const T = P + S;
    let pastKv: Float32Array[];
    const only = group[0]?.hit;
    if (B === 1 && only && only.length === only.entry.tokens.length) pastKv = [...only.entry.kv];
    else {
      pastKv = Array.from({ length: this.kv.arrays }, () => new Float32Array(B * KV * P * hd));
      group.forEach((g, b) => {
        if (!g.hit) return;
        const n = g.hit.entry.tokens.length;
        for (let a = 0; a < this.kv.arrays; a++)
          copySlots(
            g.hit.entry.kv[a] as Float32Array,
            0,
            n,
            0,
            m[b] as number,
            pastKv[a] as Float32Array,
            b * KV * P * hd,
            P,
            P - (m[b] as number),
            KV,
            hd,
          );
      });
    }
    const ids = new BigInt64Array(B * S);
    const positions = new BigInt64Array(B * S);
    const keyPos = new Int32Array(B * T).fill(-1);
    group.forEach((g, b) => {
      const mb = m[b] as number;
      const sb = s[b] as number;
      const prompt = g.seq.req.prompt;
      for (let i = 0; i < mb; i++) keyPos[b * T + P - mb + i] = i;
      for (let i = 0; i < sb; i++) {
        ids[b * S + S - sb + i] = BigInt(prompt[mb + i] as number);
        positions[b * S + S - sb + i] = BigInt(mb + i);
        keyPos[b * T + P + S - sb + i] = mb + i;
      }
    });
    const out = await this.runStep({
      batch: B,
      seq: S,
      ids,
      positions,
      keyPos,
      past: P,
      pastKv,
      logitsIndex: new BigInt64Array(B).fill(BigInt(S - 1)),
    });
    this.stats.prefillRuns++;
    this.stats.prefillTokens += s.reduce((a, x) => a + x, 0);
    this.stats.cachedTokens += m.reduce((a, x) => a + x, 0);
    this.stats.prefillMs += out.runMs;
    const V = spec.vocabSize;
    const cache = this.options.prefixCache;
    group.forEach((g, b) => {
      const seq = g.seq;
      const mb = m[b] as number;
      const sb = s[b] as number;
      const n = seq.req.prompt.length;
      /** Writes the prompt's K/V (cached past + new suffix) into `[KV, dstT, hd]` blocks. */
      const writePrompt = (dst: readonly Float32Array[], dstBase: number, dstT: number) => {
        for (let a = 0; a < this.kv.arrays; a++) {
          const d = dst[a] as Float32Array;
          if (g.hit)
            copySlots(
              g.hit.entry.kv[a] as Float32Array,
              0,
              g.hit.entry.tokens.length,
              0,
              mb,
              d,
              dstBase,
              dstT,
              0,
              KV,
              hd,
            );
          copySlots(
            out.kv[a] as Float32Array,
            b * KV * S * hd,
            S,
            S - sb,
            sb,
            d,
            dstBase,
            dstT,
            mb,
            KV,
            hd,
          );
        }
      };
      cache?.insert(seq.req.prompt, (kv) => writePrompt(kv, 0, n));
      if (!this.admit(seq, n, out.logits.subarray(b * V, (b + 1) * V))) return;
      writePrompt(this.kv.data, this.kv.rowBase(seq.row), this.kv.slots);
    });
  }

  /**
   * A prefilled sequence of `n` tokens takes its first token from `logits`; unless that ends it,
   * it gets a row of the batch's KV store (grown to fit), for the caller to fill. False when it
   * finished.
   */
  private admit(seq: Seq, n: number, logits: Float32Array): boolean {
    seq.len = n;
    this.accept(seq, logits);
    if (seq.finish !== undefined) {
      this.finish(seq);
      return false;
    }
    this.rows.push(seq);
    this.kv.ensure(this.rows, Math.max(...this.rows.map((r) => r.len)) + 1);
    seq.row = this.rows.length - 1;
    return true;
  }

  private async decode(): Promise<void> {
    const { spec } = this;
    const KV = spec.numKvHeads;
    const hd = spec.headDim;
    const rows = this.rows;
    const B = rows.length;
    let longest = 0;
    for (const r of rows) longest = Math.max(longest, r.len);
    this.kv.ensure(rows, longest + 1);
    const P = this.kv.slots;
    const T = P + 1;
    const ids = new BigInt64Array(B);
    const positions = new BigInt64Array(B);
    const keyPos = new Int32Array(B * T).fill(-1);
    rows.forEach((seq, r) => {
      ids[r] = BigInt(seq.tokens[seq.tokens.length - 1] as number);
      positions[r] = BigInt(seq.len);
      for (let t = 0; t < seq.len; t++) keyPos[r * T + t] = t;
      keyPos[r * T + P] = seq.len;
    });
    const out = await this.runStep({
      batch: B,
      seq: 1,
      ids,
      positions,
      keyPos,
      past: P,
      pastKv: this.kv.data.map((a) => a.subarray(0, B * KV * P * hd)),
      logitsIndex: new BigInt64Array(B),
    });
    this.stats.decodeSteps++;
    this.stats.decodeRows += B;
    this.stats.decodeMs += out.runMs;
    const V = spec.vocabSize;
    const done: Seq[] = [];
    rows.forEach((seq, r) => {
      for (let a = 0; a < this.kv.arrays; a++)
        copySlots(
          out.kv[a] as Float32Array,
          r * KV * hd,
          1,
          0,
          1,
          this.kv.data[a] as Float32Array,
          this.kv.rowBase(r),
          P,
          seq.len,
          KV,
          hd,
        );
      seq.len++;
      this.accept(seq, out.logits.subarray(r * V, (r + 1) * V));
      if (seq.finish !== undefined) done.push(seq);
    });
    for (const seq of done) this.finish(seq);
  }

  /** Samples the next token of `seq` from its logits and decides whether it ends. */
  private accept(seq: Seq, logits: Float32Array): void {
    const { req } = seq;
    req.onLogits?.(logits);
    const tok = sampleToken(logits, req.sampling ?? {}, seq.rng);
    seq.tokens.push(tok);
    let lp: { logprob: number; top: TokenLogprob[] } | undefined;
    if (req.logprobs !== undefined) {
      lp = tokenLogprobs(logits, tok, req.logprobs);
      seq.lps.push(lp);
    }
    req.onToken?.(lp ? { token: tok, logprob: lp } : { token: tok });
    const stops = req.stop ?? [];
    const decode = this.options.decode;
    if (this.options.stopTokenIds.has(tok)) seq.finish = "stop";
    else if (stops.length > 0 && decode) {
      const text = decode(seq.tokens);
      let cut = -1;
      for (const s of stops) {
        const at = text.indexOf(s);
        if (at >= 0 && (cut < 0 || at < cut)) cut = at;
      }
      if (cut >= 0) {
        seq.finish = "stop";
        seq.text = text.slice(0, cut);
      }
    }
    if (
      seq.finish === undefined &&
      (seq.tokens.length >= req.maxTokens || seq.len + 1 >= this.maxPositions)
    )
      seq.finish = "length";
  }

  /** Hands a finished sequence its result; a running one leaves the batch, its KV cached. */
  private finish(seq: Seq): void {
    const { spec } = this;
    if (seq.row >= 0) {
      const cache = this.options.prefixCache;
      if (cache) {
        // The KV covers the prompt and every generated token but the last (never fed back).
        const fed = [...seq.req.prompt, ...seq.tokens.slice(0, seq.len - seq.req.prompt.length)];
        const base = this.kv.rowBase(seq.row);
        cache.insert(fed, (kv) => {
          for (let a = 0; a < this.kv.arrays; a++)
            copySlots(
              this.kv.data[a] as Float32Array,
              base,
              this.kv.slots,
              0,
              seq.len,
              kv[a] as Float32Array,
              0,
              seq.len,
              0,
              spec.numKvHeads,
              spec.headDim,
            );
        });
      }
      const last = this.rows.length - 1;
      const moved = this.rows[last] as Seq;
      if (moved !== seq) {
        this.kv.moveRow(last, seq.row, moved.len);
        moved.row = seq.row;
        this.rows[seq.row] = moved;
      }
      this.rows.pop();
      seq.row = -1;
    }
    const decode = this.options.decode;
    const result: FinishedSequence = {
      tokens: seq.tokens,
      finishReason: seq.finish as FinishReason,
      promptTokens: seq.req.prompt.length,
      ...(seq.req.logprobs !== undefined ? { logprobs: seq.lps } : {}),
      ...(decode ? { text: seq.text ?? decode(seq.tokens) } : {}),
    };
    seq.req.onFinish(result);
  }
}

/**
 * Copies positions `[from, from + count)` of a `[kvHeads, srcT, hd]` block at `srcBase` to
 * positions starting at `to` of a `[kvHeads, dstT, hd]` block at `dstBase`.
 */
function copySlots(
  src: Float32Array,
  srcBase: number,
  srcT: number,
  from: number,
  count: number,
  dst: Float32Array,
  dstBase: number,
  dstT: number,
  to: number,
  kvHeads: number,
  hd: number,
): void {
  if (count <= 0) return;
  for (let h = 0; h < kvHeads; h++) {
    const s = srcBase + (h * srcT + from) * hd;
    dst.set(src.subarray(s, s + count * hd), dstBase + (h * dstT + to) * hd);
  }
}

/**
 * The batch's KV: per layer K and V as `[rows, kvHeads, slots, hd]`, row r holding its
 * sequence's positions in slots `[0, len)`. Buffers are kept and re-laid out in place when the
 * slot capacity changes (fresh memory is slow to touch on these machines, reference/machine.md);
 * they are only reallocated, 1.5× larger, when the rows × slots outgrow them.
 */
class KvRows {
  data: Float32Array[] = [];
  slots = 0;

  constructor(
    readonly arrays: number,
    private readonly kvHeads: number,
    private readonly hd: number,
  ) {}

  rowBase(row: number): number {
    return row * this.kvHeads * this.slots * this.hd;
  }

  /**
   * Makes room for `rows.length` rows of at least `need` slots, keeping the content of every row
   * already placed (`row >= 0`).
   */
  ensure(rows: readonly Seq[], need: number): void {
    const { kvHeads, hd } = this;
    const old = this.slots;
    let slots = old;
    if (need > old || need <= old - 2 * KV_SLOT_CHUNK)
      slots = Math.ceil(need / KV_SLOT_CHUNK) * KV_SLOT_CHUNK;
    const placed = rows.filter((s) => s.row >= 0 && s.len > 0);
    const size = rows.length * kvHeads * slots * hd;
    const cap = this.data[0]?.length ?? 0;
    if (size > cap) {
      const fresh = Array.from(
        { length: this.arrays },
        () => new Float32Array(Math.ceil(Math.max(size, cap * 1.5))),
      );
      for (const seq of placed)
        for (let a = 0; a < this.arrays; a++)
          copySlots(
            this.data[a] as Float32Array,
            this.rowBase(seq.row),
            old,
            0,
            seq.len,
            fresh[a] as Float32Array,
            seq.row * kvHeads * slots * hd,
            slots,
            0,
            kvHeads,
            hd,
          );
      this.data = fresh;
    } else if (slots !== old) {
      // In place: (row, head) blocks move up when slots grow, so they are copied from the last
      // one down; they move down when slots shrink, copied from the first one up. A block's
      // destination never overlaps a block not yet moved.
      const blocks: number[] = [];
      for (const seq of placed)
        for (let h = 0; h < kvHeads; h++) blocks.push(seq.row * kvHeads + h);
      blocks.sort((x, y) => (slots > old ? y - x : x - y));
      const lenOf = new Map(placed.map((s) => [s.row, s.len]));
      for (const a of this.data)
        for (const blk of blocks) {
          const len = lenOf.get(Math.floor(blk / kvHeads)) as number;
          a.copyWithin(blk * slots * hd, blk * old * hd, blk * old * hd + len * hd);
        }
    }
    this.slots = slots;
  }

  /** Moves row `from`'s first `len` slots to row `to`. */
  moveRow(from: number, to: number, len: number): void {
    for (let a = 0; a < this.arrays; a++) {
      const d = this.data[a] as Float32Array;
      copySlots(
        d,
        this.rowBase(from),
        this.slots,
        0,
        len,
        d,
        this.rowBase(to),
        this.slots,
        0,
        this.kvHeads,
        this.hd,
      );
    }
  }
}
