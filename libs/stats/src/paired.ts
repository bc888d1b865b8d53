import { StatsInputError } from "./errors.ts";
import type { Interval } from "./proportions.ts";
import { createRng } from "./rng.ts";
import { binomCdf } from "./special.ts";
import type { Alternative, TestResult } from "./test-result.ts";

/** One task's scored rewards under the baseline (`first`) and the treatment (`second`). */
export interface PairedTask {
  readonly taskId: string;
  readonly first: readonly number[];
  readonly second: readonly number[];
}

const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/** Per-task differences of mean reward, treatment − baseline. */
export function taskDifferences(tasks: readonly PairedTask[]): number[] {
  return tasks.map((t) => {
    if (t.first.length === 0 || t.second.length === 0) {
      throw new StatsInputError(`task ${t.taskId} has no scored trial in one of the two variants`);
    }
    return mean(t.second) - mean(t.first);
  });
}

/** Differences closer to 0 than this are ties (means of a few 0/1 rewards are exact anyway). */
const ZERO_DIFF = 1e-12;

/**
 * Exact sign test on per-task differences: ties dropped, Bin(n, ½) on the count of positive
 * differences (scipy `binomtest(k, n, 0.5)`).
 */
export function signTest(
  diffs: readonly number[],
  alternative: Alternative = "two-sided",
): TestResult {
  const nonzero = diffs.filter((d) => Math.abs(d) > ZERO_DIFF);
  const n = nonzero.length;
  const pos = nonzero.filter((d) => d > 0).length;
  let p: number;
  if (n === 0) p = 1;
  else if (alternative === "greater") p = 1 - binomCdf(pos - 1, n, 0.5);
  else if (alternative === "less") p = binomCdf(pos, n, 0.5);
  else p = Math.min(1, 2 * Math.min(binomCdf(pos, n, 0.5), 1 - binomCdf(pos - 1, n, 0.5)));
  return {
    test: "exact sign test (per-task mean differences)",
    alternative,
    n,
    nUnit: "non-zero task differences",
    statistic: pos,
    statisticName: "positive differences",
    pValue: Math.min(1, Math.max(0, p)),
    ...(n < diffs.length ? { note: `${diffs.length - n} tied task(s) dropped` } : {}),
  };
}

/**
 * Per-task differences of mean rewards are multiples of 1/lcm(replica counts) when rewards are
 * 0/1; 2520 = lcm(1..10) covers up to ten replicas. Such differences get an exact test for any
 * number of tasks by counting sums on this integer lattice.
 */
export const PERMUTATION_LATTICE = 2520;
/** Divisors of {@link PERMUTATION_LATTICE}, ascending: candidate lattice steps. */
const LATTICE_STEPS = Array.from({ length: PERMUTATION_LATTICE }, (_, i) => i + 1).filter(
  (k) => PERMUTATION_LATTICE % k === 0,
);
/** Largest |Σ| on the lattice counted exactly (array of 2·this+1 doubles, ~16 MiB). */
const MAX_LATTICE_SUM = 1_000_000;
/** Enumerate all 2^n sign flips up to this many non-zero off-lattice differences. */
export const MAX_EXACT_PERMUTATION_TASKS = 20;
/** Monte Carlo sign flips when neither exact method applies. */
export const PERMUTATION_RESAMPLES = 100_000;
/** Relative tolerance for "as extreme as observed" with float sums. */
const PERM_TOL = 1e-9;

/** Exact tail probabilities P(S ≥ s), P(S ≤ s) of a sign-flip sum on the integer lattice. */
function latticeTails(m: readonly number[], observed: number): { geq: number; leq: number } | null {
  const total = m.reduce((s, x) => s + Math.abs(x), 0);
  if (total > MAX_LATTICE_SUM) return null;
  // dist[k + total] = P(S = k); each task adds ±|m| with probability ½.
  let dist = new Float64Array(2 * total + 1);
  dist[total] = 1;
  for (const x of m) {
    const a = Math.abs(x);
    const next = new Float64Array(2 * total + 1);
    for (let k = 0; k < dist.length; k++) {
      const p = dist[k]!;
      if (p === 0) continue;
      if (k + a < next.length) next[k + a]! += p / 2;
      if (k - a >= 0) next[k - a]! += p / 2;
    }
    dist = next;
  }
  let geq = 0;
  let leq = 0;
  for (let k = 0; k < dist.length; k++) {
    const sum = k - total;
    if (sum >= observed) geq += dist[k]!;
    if (sum <= observed) leq += dist[k]!;
  }
  return { geq, leq };
}

/**
 * Paired permutation (sign-flip) test of the mean per-task difference: under H0 each task's
 * difference is equally likely ±. Exact on the lattice of multiples of 1/{@link
 * PERMUTATION_LATTICE} (any number of tasks), else exact by enumeration up to
 * {@link MAX_EXACT_PERMUTATION_TASKS} differences, else Monte Carlo with a seed
 * (p = (hits + 1)/(R + 1)). Two-sided = 2·min(one-sided), capped at 1, as scipy `permutation_test`.
 */
export function permutationTest(
  diffs: readonly number[],
  alternative: Alternative = "two-sided",
  seed = 1,
): TestResult {
  const d = diffs.filter((x) => Math.abs(x) > ZERO_DIFF);
  const n = d.length;
  const observed = d.reduce((s, x) => s + x, 0);
  const tol = PERM_TOL * Math.max(1, Math.abs(observed));
  let pG: number;
  let pL: number;
  let note: string | undefined;
  // The coarsest lattice that holds every difference keeps the convolution small.
  const step = LATTICE_STEPS.find((L) =>
    d.every((x) => Math.abs(x * L - Math.round(x * L)) < 1e-6),
  );
  const scaled = step === undefined ? [] : d.map((x) => x * step);
  const lattice =
    step !== undefined
      ? latticeTails(
          scaled.map((x) => Math.round(x)),
          scaled.reduce((s, x) => s + Math.round(x), 0),
        )
      : null;
  if (lattice) {
    pG = lattice.geq;
    pL = lattice.leq;
  } else if (n <= MAX_EXACT_PERMUTATION_TASKS) {
    // Gray-code walk: each step flips one sign, so each sum costs O(1).
    let sum = observed;
    let geq = 0;
    let leq = 0;
    const sign = new Array<number>(n).fill(1);
    const total = 2 ** n;
    for (let i = 0; i < total; i++) {
      if (i > 0) {
        const bit = Math.log2(i & -i);
        sum -= 2 * sign[bit]! * d[bit]!;
        sign[bit] = -sign[bit]!;
      }
      if (sum >= observed - tol) geq++;
      if (sum <= observed + tol) leq++;
    }
    pG = geq / total;
    pL = leq / total;
  } else {
    const rng = createRng(seed);
    let geq = 1;
    let leq = 1;
    for (let r = 0; r < PERMUTATION_RESAMPLES; r++) {
      let sum = 0;
      for (const x of d) sum += rng.next() < 0.5 ? -x : x;
      if (sum >= observed - tol) geq++;
      if (sum <= observed + tol) leq++;
    }
    pG = geq / (PERMUTATION_RESAMPLES + 1);
    pL = leq / (PERMUTATION_RESAMPLES + 1);
    note = `Monte Carlo: ${PERMUTATION_RESAMPLES} random sign flips, seed ${seed}`;
  }
  const p =
    alternative === "greater"
      ? pG
      : alternative === "less"
        ? pL
        : Math.min(1, 2 * Math.min(pG, pL));
  return {
    test: `${note === undefined ? "exact " : ""}paired permutation test (sign flips of per-task mean differences)`,
    alternative,
    n,
    nUnit: "non-zero task differences",
    statistic: n === 0 ? 0 : observed / diffs.length,
    statisticName: "mean difference",
    pValue: Math.min(1, p),
    ...(note === undefined ? {} : { note }),
  };
}

/** Default bootstrap resamples. */
export const BOOTSTRAP_RESAMPLES = 2000;

/** Result of the paired bootstrap. */
export interface BootstrapResult {
  readonly method: string;
  /** Observed accuracy difference (treatment − baseline), mean over tasks. */
  readonly difference: number;
  readonly ci: Interval;
  readonly confidence: number;
  readonly resamples: number;
  readonly seed: number;
  /** Tasks resampled. */
  readonly n: number;
}

function quantile(sorted: readonly number[], q: number): number {
  // Linear interpolation between order statistics (numpy's default, "type 7").
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/**
 * Paired bootstrap of the accuracy difference: resample tasks with replacement, then within each
 * drawn task resample each variant's replicas with replacement; percentile CI. Deterministic for a
 * given seed.
 */
export function pairedBootstrap(
  tasks: readonly PairedTask[],
  options: { resamples?: number; seed?: number; confidence?: number; signal?: AbortSignal } = {},
): BootstrapResult {
  const resamples = options.resamples ?? BOOTSTRAP_RESAMPLES;
  const seed = options.seed ?? 1;
  const confidence = options.confidence ?? 0.95;
  if (tasks.length === 0)
    throw new StatsInputError("paired bootstrap needs at least one common task");
  if (!Number.isInteger(resamples) || resamples < 1) {
    throw new StatsInputError(`bootstrap resamples must be a positive integer, got ${resamples}`);
  }
  const observed = mean(taskDifferences(tasks));
  const rng = createRng(seed);
  const T = tasks.length;
  const stats = new Float64Array(resamples);
  const resampleMean = (xs: readonly number[]) => {
    let s = 0;
    for (let i = 0; i < xs.length; i++) s += xs[rng.int(xs.length)]!;
    return s / xs.length;
  };
  for (let r = 0; r < resamples; r++) {
    if ((r & 255) === 0) options.signal?.throwIfAborted();
    let s = 0;
    for (let i = 0; i < T; i++) {
      const t = tasks[rng.int(T)]!;
      s += resampleMean(t.second) - resampleMean(t.first);
    }
    stats[r] = s / T;
  }
  const sorted = Array.from(stats).sort((x, y) => x - y);
  const alpha = 1 - confidence;
  return {
    method: "paired bootstrap over tasks and replicas within tasks (percentile CI)",
    difference: observed,
    ci: { low: quantile(sorted, alpha / 2), high: quantile(sorted, 1 - alpha / 2) },
    confidence,
    resamples,
    seed,
    n: T,
  };
}
