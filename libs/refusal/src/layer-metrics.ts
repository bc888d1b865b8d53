/**
 * Per-layer separation metrics of a direction: AUC of the per-prompt projection (with a seeded,
 * stratified bootstrap 95 % CI), Cohen's d, and cosines with a reference and with the neighbours.
 */
import { type Directions, directionRow } from "./direction-math.ts";
import { DirectionsError } from "./errors.ts";
import { createRandom } from "./random.ts";
import { assertCompatible, type Residuals, residualAt } from "./residuals.ts";

/** Bootstrap resamples for the AUC CI; 1000 puts the Monte-Carlo error of a 2.5 % quantile near 0.005. */
export const DEFAULT_BOOTSTRAP_RESAMPLES = 1000;
/** Hard cap on resamples so a typo cannot pin a CPU for hours. */
export const MAX_BOOTSTRAP_RESAMPLES = 100_000;

/** Projections `x · d` (f64) of the chosen prompts of one bucket at one layer. */
export function projections(
  r: Residuals,
  layer: number,
  direction: ArrayLike<number>,
  indices: readonly number[],
): Float64Array {
  const out = new Float64Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const v = residualAt(r, indices[k] as number, layer);
    let s = 0;
    for (let j = 0; j < r.hidden; j++) s += (v[j] as number) * (direction[j] as number);
    out[k] = s;
  }
  return out;
}

/**
 * Area under the ROC curve for "refuse scores higher than comply": the Mann–Whitney U statistic
 * divided by n₁n₀, ties counted half (same as sklearn's roc_auc_score).
 */
export function auc(positive: ArrayLike<number>, negative: ArrayLike<number>): number {
  const np = positive.length;
  const nn = negative.length;
  if (np === 0 || nn === 0)
    throw new DirectionsError(`AUC needs both classes: got ${np} refuse and ${nn} comply scores`);
  const all: { v: number; pos: boolean }[] = [];
  for (let i = 0; i < np; i++) all.push({ v: positive[i] as number, pos: true });
  for (let i = 0; i < nn; i++) all.push({ v: negative[i] as number, pos: false });
  all.sort((a, b) => a.v - b.v);
  let rankSum = 0;
  let i = 0;
  while (i < all.length) {
    let j = i;
    while (j + 1 < all.length && (all[j + 1] as { v: number }).v === (all[i] as { v: number }).v)
      j++;
    const midRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if ((all[k] as { pos: boolean }).pos) rankSum += midRank;
    i = j + 1;
  }
  return (rankSum - (np * (np + 1)) / 2) / (np * nn);
}

/** numpy's default ("linear") quantile of sorted values. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) throw new DirectionsError("quantile of an empty sample");
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  return (sorted[lo] as number) + (pos - lo) * ((sorted[hi] as number) - (sorted[lo] as number));
}

/**
 * Percentile-bootstrap 95 % CI of the AUC, resampling each class separately (stratified) with the
 * seeded mulberry32 stream: for each resample, all refuse draws first, then all comply draws.
 */
export function aucBootstrapCi(
  positive: ArrayLike<number>,
  negative: ArrayLike<number>,
  resamples: number,
  seed: number,
): [number, number] {
  if (!Number.isInteger(resamples) || resamples < 1 || resamples > MAX_BOOTSTRAP_RESAMPLES) {
    throw new DirectionsError(
      `bootstrap resamples ${resamples} must be an integer in 1..${MAX_BOOTSTRAP_RESAMPLES}`,
    );
  }
  const rand = createRandom(seed);
  const np = positive.length;
  const nn = negative.length;
  const p = new Float64Array(np);
  const n = new Float64Array(nn);
  const stats = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    for (let i = 0; i < np; i++) p[i] = positive[Math.floor(rand() * np)] as number;
    for (let i = 0; i < nn; i++) n[i] = negative[Math.floor(rand() * nn)] as number;
    stats[b] = auc(p, n);
  }
  stats.sort();
  return [quantileSorted(stats, 0.025), quantileSorted(stats, 0.975)];
}

function meanVar(x: ArrayLike<number>): { mean: number; variance: number } {
  let m = 0;
  for (let i = 0; i < x.length; i++) m += x[i] as number;
  m /= x.length;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += ((x[i] as number) - m) ** 2;
  return { mean: m, variance: x.length > 1 ? s / (x.length - 1) : 0 };
}

/** Cohen's d with the pooled (n−1) standard deviation; 0 when both samples are constant and equal. */
export function cohensD(positive: ArrayLike<number>, negative: ArrayLike<number>): number {
  const n1 = positive.length;
  const n0 = negative.length;
  if (n1 + n0 < 3 || n1 === 0 || n0 === 0) {
    throw new DirectionsError(
      `Cohen's d needs ≥ 1 per class and ≥ 3 in all: got ${n1} refuse and ${n0} comply`,
    );
  }
  const a = meanVar(positive);
  const b = meanVar(negative);
  const pooled = Math.sqrt(((n1 - 1) * a.variance + (n0 - 1) * b.variance) / (n1 + n0 - 2));
  const diff = a.mean - b.mean;
  if (pooled === 0) return diff === 0 ? 0 : Math.sign(diff) * Number.POSITIVE_INFINITY;
  return diff / pooled;
}

/** Cosine similarity in f64; NaN when either vector is zero. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / Math.sqrt(aa * bb);
}

/** One row of the layer ranking. Cosines are NaN where there is no neighbour or reference. */
export interface LayerMetrics {
  readonly layer: number;
  readonly auc: number;
  readonly aucLow: number;
  readonly aucHigh: number;
  readonly cohensD: number;
  readonly cosPrev: number;
  readonly cosNext: number;
  readonly cosReference: number;
}

/** Options of {@link layerMetrics}. */
export interface LayerMetricsOptions {
  /** Select-split prompt indices per bucket (the prompts the directions were not fit on). */
  readonly refuseIndices: readonly number[];
  readonly complyIndices: readonly number[];
  readonly resamples?: number;
  readonly seed?: number;
  /** A reference direction set with the same shape, e.g. an earlier run's. */
  readonly reference?: Directions;
  readonly signal?: AbortSignal;
}

/** Metrics of every layer's direction on the select split. */
export function layerMetrics(
  refuse: Residuals,
  comply: Residuals,
  directions: Directions,
  options: LayerMetricsOptions,
): LayerMetrics[] {
  assertCompatible(refuse, comply);
  if (directions.layers !== refuse.layers || directions.hidden !== refuse.hidden) {
    throw new DirectionsError(
      `directions [${directions.layers}, ${directions.hidden}] do not match residuals [*, ${refuse.layers}, ${refuse.hidden}]`,
    );
  }
  const ref = options.reference;
  if (ref && (ref.layers !== directions.layers || ref.hidden !== directions.hidden)) {
    throw new DirectionsError(
      `reference directions [${ref.layers}, ${ref.hidden}] do not match [${directions.layers}, ${directions.hidden}]`,
    );
  }
  const resamples = options.resamples ?? DEFAULT_BOOTSTRAP_RESAMPLES;
  const seed = options.seed ?? 0;
  const rows: LayerMetrics[] = [];
  for (let l = 0; l < directions.layers; l++) {
    options.signal?.throwIfAborted();
    const d = directionRow(directions, l);
    const pr = projections(refuse, l, d, options.refuseIndices);
    const pc = projections(comply, l, d, options.complyIndices);
    // Each layer gets its own stream (seed + layer) so one layer's result does not depend on
    // how many layers came before it.
    const [aucLow, aucHigh] = aucBootstrapCi(pr, pc, resamples, (seed + l) >>> 0);
    rows.push({
      layer: l,
      auc: auc(pr, pc),
      aucLow,
      aucHigh,
      cohensD: cohensD(pr, pc),
      cosPrev: l > 0 ? cosine(d, directionRow(directions, l - 1)) : Number.NaN,
      cosNext: l + 1 < directions.layers ? cosine(d, directionRow(directions, l + 1)) : Number.NaN,
      cosReference: ref ? cosine(d, directionRow(ref, l)) : Number.NaN,
    });
  }
  return rows;
}

const CSV_COLUMNS = [
  "layer",
  "auc",
  "auc_low",
  "auc_high",
  "cohens_d",
  "cos_prev",
  "cos_next",
  "cos_reference",
] as const;

function csvNumber(x: number): string {
  return Number.isNaN(x) ? "" : String(x);
}

/** `ranking.csv`: one row per layer in layer order, empty cells for absent cosines. */
export function formatRankingCsv(rows: readonly LayerMetrics[]): string {
  const lines = [CSV_COLUMNS.join(",")];
  for (const r of rows) {
    lines.push(
      [r.layer, r.auc, r.aucLow, r.aucHigh, r.cohensD, r.cosPrev, r.cosNext, r.cosReference]
        .map(csvNumber)
        .join(","),
    );
  }
  return `${lines.join("\n")}\n`;
}
