import { StatsInputError } from "./errors.ts";
import { normalQuantile } from "./special.ts";

/** A two-sided confidence interval. */
export interface Interval {
  readonly low: number;
  readonly high: number;
}

/**
 * Wilson score interval for a binomial proportion (matches statsmodels
 * `proportion_confint(method="wilson")`). Null when n = 0.
 */
export function wilsonInterval(successes: number, n: number, confidence = 0.95): Interval | null {
  if (!Number.isInteger(successes) || !Number.isInteger(n) || successes < 0 || successes > n) {
    throw new StatsInputError(`Wilson interval needs 0 ≤ successes ≤ n, got ${successes}/${n}`);
  }
  if (n === 0) return null;
  const z = normalQuantile(1 - (1 - confidence) / 2);
  const p = successes / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { low: Math.max(0, center - half), high: Math.min(1, center + half) };
}

/**
 * Unbiased pass@k for one task with n trials and c passes: 1 − C(n−c, k)/C(n, k) (Chen et al.
 * 2021), computed as a product so large n does not overflow.
 */
export function passAtK(n: number, c: number, k: number): number {
  if (!(k >= 1 && k <= n && c >= 0 && c <= n)) {
    throw new StatsInputError(`pass@k needs 1 ≤ k ≤ n and 0 ≤ c ≤ n, got n=${n} c=${c} k=${k}`);
  }
  if (n - c < k) return 1;
  let q = 1;
  for (let i = n - c + 1; i <= n; i++) q *= 1 - k / i;
  return 1 - q;
}

/**
 * The k values reported for pass@k: 1, powers of two and multiples of five up to the smallest
 * trial count of any task (as Harbor reports them, reference/terminal-bench.md §5).
 */
export function passAtKValues(minTrials: number): number[] {
  const ks = new Set<number>();
  if (minTrials >= 1) ks.add(1);
  for (let k = 2; k <= minTrials; k *= 2) ks.add(k);
  for (let k = 5; k <= minTrials; k += 5) ks.add(k);
  return [...ks].sort((a, b) => a - b);
}
