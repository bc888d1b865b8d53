/**
 * KL divergence between a base and a variant model from the top-k logprobs of their generated
 * tokens, over the first k positions rather than only the first token (reference/abliteration.md
 * §8.7 — first-token KL misses damage that shows a few tokens in).
 *
 * An OpenAI endpoint only reveals a distribution at positions it generated itself, so both models
 * are compared where their greedy continuations still share the same prefix: there the contexts
 * are identical and the two distributions are directly comparable. Positions after the first
 * divergent token are not used; how many positions counted is reported with the mean.
 */
import type { GeneratedToken, TokenLogprob } from "./openai-endpoint.ts";

/** Floor for probabilities that the variant's top-k leaves out, so log q stays finite. */
export const KL_PROBABILITY_FLOOR = 1e-10;

/**
 * KL(P ‖ Q) over the base's top-k tokens plus one "rest" bucket. A token missing from the
 * variant's top-k gets an equal share of the variant's leftover mass, capped by the variant's
 * smallest listed probability (it was not listed, so it cannot be larger).
 */
export function klTopLogprobs(
  base: readonly TokenLogprob[],
  variant: readonly TokenLogprob[],
): number {
  const q = new Map<string, number>();
  for (const t of variant) q.set(t.token, Math.exp(t.logprob));
  const qListed = [...q.values()];
  const qMin = qListed.length > 0 ? Math.min(...qListed) : 1;
  const pTokens = base.map((t) => ({ token: t.token, p: Math.exp(t.logprob) }));
  const missing = pTokens.filter((t) => !q.has(t.token)).length;
  let qCovered = 0;
  for (const t of pTokens) qCovered += q.get(t.token) ?? 0;
  const qLeft = Math.max(0, 1 - qCovered);
  const qShare = missing > 0 ? Math.min(qMin, qLeft / (missing + 1)) : 0;
  let kl = 0;
  let pSum = 0;
  let qSum = 0;
  for (const t of pTokens) {
    const qi = Math.max(KL_PROBABILITY_FLOOR, q.get(t.token) ?? qShare);
    pSum += t.p;
    qSum += qi;
    if (t.p > 0) kl += t.p * (Math.log(t.p) - Math.log(qi));
  }
  const pRest = Math.max(0, 1 - pSum);
  const qRest = Math.max(KL_PROBABILITY_FLOOR, 1 - qSum);
  if (pRest > 0) kl += pRest * (Math.log(pRest) - Math.log(qRest));
  return Math.max(0, kl);
}

/** Mean KL over the shared-prefix positions of one prompt. */
export interface PromptKl {
  /** Mean over the positions used; NaN if none. */
  readonly kl: number;
  readonly positions: number;
}

/** KL per position over the first `k` tokens where both continuations agree so far. */
export function sharedPrefixKl(
  base: readonly GeneratedToken[],
  variant: readonly GeneratedToken[],
  k: number,
): PromptKl {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < Math.min(k, base.length, variant.length); i++) {
    const b = base[i] as GeneratedToken;
    const v = variant[i] as GeneratedToken;
    // Position i is comparable because tokens 0..i-1 matched; include it, then stop if it differs.
    sum += klTopLogprobs(b.top.length > 0 ? b.top : [b], v.top.length > 0 ? v.top : [v]);
    n++;
    if (b.token !== v.token) break;
  }
  return { kl: n > 0 ? sum / n : Number.NaN, positions: n };
}
