import { StatsInputError } from "./errors.ts";
import type { PairedTask } from "./paired.ts";
import { normalQuantile } from "./special.ts";

/** Replicas per task needed to detect a difference; see {@link replicasForPower}. */
export interface PowerResult {
  /** Accuracy difference to detect (absolute, in reward units). */
  readonly difference: number;
  readonly alpha: number;
  readonly power: number;
  /** Sided-ness of the planned test. */
  readonly sides: 1 | 2;
  /** Tasks the plan assumes (the common tasks). */
  readonly tasks: number;
  /** Σ over tasks of the two variants' per-trial reward variances. */
  readonly varianceSum: number;
  /** Replicas per task per variant; null when the difference is 0. */
  readonly replicasPerTask: number | null;
  /** replicasPerTask × tasks: trials each variant needs. */
  readonly trialsPerVariant: number | null;
  readonly formula: string;
  readonly note?: string;
}

/** Formula text printed with every power result. */
export const POWER_FORMULA =
  "r = ceil((z_{1−α/s} + z_{power})² · Σ_t (σ²_{A,t} + σ²_{B,t}) / (T² · Δ²)); σ²_{v,t} = sample variance of variant v's rewards on task t (ddof 1), or the task's pooled Bernoulli variance p̄_t(1−p̄_t) when v has one trial there; tasks held fixed";

function sampleVariance(xs: readonly number[]): number {
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  return xs.reduce((s, x) => s + (x - m) * (x - m), 0) / (xs.length - 1);
}

/**
 * Replicas per task (per variant) needed to detect an accuracy difference `difference` at the
 * given power, with tasks fixed (as the leaderboard's SE). The estimated difference
 * Δ̂ = (1/T) Σ_t (p̂_{B,t} − p̂_{A,t}) has variance (1/T²) Σ_t (σ²_{A,t} + σ²_{B,t}) / r with r
 * replicas each, so a z-test reaches the power when (z_{1−α/s} + z_{power})·√Var ≤ |Δ|; solving
 * for r gives {@link POWER_FORMULA}. Within-task variances are the observed ones.
 */
export function replicasForPower(
  tasks: readonly PairedTask[],
  difference: number,
  options: { alpha?: number; power?: number; sides?: 1 | 2 } = {},
): PowerResult {
  const alpha = options.alpha ?? 0.05;
  const power = options.power ?? 0.8;
  const sides = options.sides ?? 2;
  if (!(alpha > 0 && alpha < 1) || !(power > 0 && power < 1)) {
    throw new StatsInputError(
      `power analysis needs 0 < alpha, power < 1, got alpha=${alpha} power=${power}`,
    );
  }
  if (tasks.length === 0)
    throw new StatsInputError("power analysis needs at least one common task");
  let varianceSum = 0;
  let pooledTasks = 0;
  for (const t of tasks) {
    const all = [...t.first, ...t.second];
    const pbar = all.reduce((s, x) => s + x, 0) / all.length;
    const pooled = pbar * (1 - pbar);
    const single = t.first.length < 2 || t.second.length < 2;
    if (single) pooledTasks++;
    varianceSum += t.first.length >= 2 ? sampleVariance(t.first) : pooled;
    varianceSum += t.second.length >= 2 ? sampleVariance(t.second) : pooled;
  }
  const T = tasks.length;
  const z = normalQuantile(1 - alpha / sides) + normalQuantile(power);
  const delta = Math.abs(difference);
  let replicas: number | null = null;
  let note: string | undefined;
  if (delta === 0) note = "difference is 0: no number of replicas detects it";
  else if (varianceSum === 0) {
    replicas = 1;
    note = "no within-task variance observed: one replica already separates the variants";
  } else replicas = Math.max(1, Math.ceil((z * z * varianceSum) / (T * T * delta * delta)));
  if (pooledTasks > 0) {
    const pooledNote = `${pooledTasks} task(s) with a single trial in a variant use the pooled variance p̄(1−p̄)`;
    note = note === undefined ? pooledNote : `${note}; ${pooledNote}`;
  }
  return {
    difference: delta,
    alpha,
    power,
    sides,
    tasks: T,
    varianceSum,
    replicasPerTask: replicas,
    trialsPerVariant: replicas === null ? null : replicas * T,
    formula: POWER_FORMULA,
    ...(note === undefined ? {} : { note }),
  };
}
