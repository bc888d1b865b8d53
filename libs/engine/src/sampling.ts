import { EngineRequestError } from "./errors.ts";

/** How the next token is chosen. `temperature` 0 (the default) is greedy. */
export interface SamplingOptions {
  readonly temperature?: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches this (0, 1]. */
  readonly topP?: number;
  /** Keep only the k most likely tokens (0 = all). */
  readonly topK?: number;
  /** Seed of the per-sequence PRNG; the same seed and prompt give the same tokens. */
  readonly seed?: number;
}

/**
 * Tokens whose probability is below this fraction of the most likely one are dropped before
 * top-p sorting: their total mass is at most vocab × 1e-9 of the top token (5e-5 for a 50k vocab),
 * and it keeps the per-step sort to a few hundred candidates instead of the whole vocabulary.
 */
const CANDIDATE_FLOOR = 1e-9;

/** Validates sampling options, naming the bad field. */
export function validateSampling(s: SamplingOptions): void {
  const t = s.temperature ?? 0;
  if (!Number.isFinite(t) || t < 0)
    throw new EngineRequestError(`temperature must be >= 0, got ${t}`);
  const p = s.topP ?? 1;
  if (!Number.isFinite(p) || p <= 0 || p > 1)
    throw new EngineRequestError(`top_p must be in (0, 1], got ${p}`);
  const k = s.topK ?? 0;
  if (!Number.isInteger(k) || k < 0)
    throw new EngineRequestError(`top_k must be a non-negative integer, got ${k}`);
  if (s.seed !== undefined && !Number.isSafeInteger(s.seed))
    throw new EngineRequestError(`seed must be an integer, got ${s.seed}`);
}

/** A small deterministic PRNG (mulberry32): uniform floats in [0, 1) from a 32-bit seed. */
export function createRng(seed: number): () => number {
  let a = (seed ^ Math.floor(seed / 2 ** 32)) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Index of the largest value (the first on ties, as torch.argmax). */
export function argmax(x: Float32Array): number {
  let best = 0;
  let bv = x[0] as number;
  for (let i = 1; i < x.length; i++) {
    const v = x[i] as number;
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  return best;
}

/** Picks the next token from one row of logits. */
export function sampleToken(logits: Float32Array, s: SamplingOptions, rng: () => number): number {
  const t = s.temperature ?? 0;
  if (t === 0) return argmax(logits);
  const topK = s.topK ?? 0;
  const topP = s.topP ?? 1;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of logits) if (v > max) max = v;
  const floor = max + t * Math.log(CANDIDATE_FLOOR);
  const cand: number[] = [];
  for (let i = 0; i < logits.length; i++) if ((logits[i] as number) >= floor) cand.push(i);
  cand.sort((a, b) => (logits[b] as number) - (logits[a] as number) || a - b);
  if (topK > 0 && cand.length > topK) cand.length = topK;
  const probs = cand.map((i) => Math.exp(((logits[i] as number) - max) / t));
  let total = probs.reduce((a, b) => a + b, 0);
  if (topP < 1) {
    let acc = 0;
    let keep = probs.length;
    for (let j = 0; j < probs.length; j++) {
      acc += (probs[j] as number) / total;
      if (acc >= topP) {
        keep = j + 1;
        break;
      }
    }
    probs.length = keep;
    total = probs.reduce((a, b) => a + b, 0);
  }
  let u = rng() * total;
  for (let j = 0; j < probs.length; j++) {
    u -= probs[j] as number;
    if (u < 0) return cand[j] as number;
  }
  return cand[probs.length - 1] as number;
}

/** A token and its log-probability. */
export interface TokenLogprob {
  readonly token: number;
  readonly logprob: number;
}

/** Log-probability of `token` under softmax(logits), plus the `top` most likely alternatives. */
export function tokenLogprobs(
  logits: Float32Array,
  token: number,
  top: number,
): { logprob: number; top: TokenLogprob[] } {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  const best: TokenLogprob[] = [];
  if (top > 0) {
    for (let i = 0; i < logits.length; i++) {
      const v = logits[i] as number;
      if (best.length < top || v > (best[best.length - 1] as TokenLogprob).logprob) {
        best.push({ token: i, logprob: v });
        best.sort((a, b) => b.logprob - a.logprob);
        if (best.length > top) best.pop();
      }
    }
  }
  return {
    logprob: (logits[token] as number) - lse,
    top: best.map((b) => ({ token: b.token, logprob: b.logprob - lse })),
  };
}
