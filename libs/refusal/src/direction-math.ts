/**
 * Per-layer refusal directions from two buckets of residuals. All sums run in f64 (as Heretic and
 * Arditi et al. do, reference/abliteration.md §2.1, §2.3) and only the finished unit vectors are
 * rounded to f32.
 */
import { DirectionsError } from "./errors.ts";
import { assertCompatible, type Residuals, residualAt } from "./residuals.ts";

/** How a layer's direction is derived from the two buckets. */
export type DirectionMethod = "mean-diff" | "projected" | "pca";

/** Options of {@link computeDirections}. */
export interface DirectionOptions {
  readonly method?: DirectionMethod;
  /** Prompt indices used for fitting, per bucket; all prompts when absent. */
  readonly refuseIndices?: readonly number[];
  readonly complyIndices?: readonly number[];
  /**
   * Return a zero vector where the buckets do not differ at all instead of throwing. Happens at
   * the embedding layer when every prompt ends in the same template token.
   */
  readonly allowZero?: boolean;
}

/** Power-iteration limits for the PCA method: enough for 1e-12 relative change on real data. */
const PCA_MAX_ITERATIONS = 5000;
const PCA_TOLERANCE = 1e-13;

/** Per-layer directions `[layers, hidden]` as one flat f32 buffer plus its shape. */
export interface Directions {
  readonly layers: number;
  readonly hidden: number;
  readonly data: Float32Array;
}

function allIndices(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function checkIndices(indices: readonly number[], n: number, bucket: string): void {
  if (indices.length === 0) throw new DirectionsError(`${bucket} bucket has no prompts to fit on`);
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i >= n) {
      throw new DirectionsError(`${bucket} prompt index ${i} is outside 0..${n - 1}`);
    }
  }
}

/** Mean residual of the selected prompts at one layer, accumulated in f64. */
export function meanAt(r: Residuals, layer: number, indices: readonly number[]): Float64Array {
  const mean = new Float64Array(r.hidden);
  for (const p of indices) {
    const v = residualAt(r, p, layer);
    for (let j = 0; j < r.hidden; j++) mean[j] = (mean[j] as number) + (v[j] as number);
  }
  for (let j = 0; j < r.hidden; j++) mean[j] = (mean[j] as number) / indices.length;
  return mean;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}

function normalizeInPlace(v: Float64Array, what: string, allowZero = false): Float64Array {
  const n = Math.sqrt(dot(v, v));
  if (allowZero && n === 0) return v;
  if (!(n > 0) || !Number.isFinite(n))
    throw new DirectionsError(`${what} has norm ${n}; no direction exists`);
  for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) / n;
  return v;
}

/**
 * First principal axis of the paired differences `refuse[i] − comply[i]`, uncentred (the top right
 * singular vector of the difference matrix), found by power iteration on the small n×n Gram
 * matrix. Uncentred because the mean difference is the signal we want; centring would remove it.
 * The sign is chosen so the mean difference projects positively.
 */
function pcaDirection(
  refuse: Residuals,
  comply: Residuals,
  layer: number,
  ri: readonly number[],
  ci: readonly number[],
  allowZero = false,
): Float64Array {
  if (ri.length !== ci.length) {
    throw new DirectionsError(
      `pca needs paired prompts: refuse has ${ri.length}, comply has ${ci.length}`,
    );
  }
  const n = ri.length;
  const h = refuse.hidden;
  const diffs: Float64Array[] = [];
  for (let k = 0; k < n; k++) {
    const a = residualAt(refuse, ri[k] as number, layer);
    const b = residualAt(comply, ci[k] as number, layer);
    const d = new Float64Array(h);
    for (let j = 0; j < h; j++) d[j] = (a[j] as number) - (b[j] as number);
    diffs.push(d);
  }
  if (allowZero && diffs.every((d) => d.every((x) => x === 0))) return new Float64Array(h);
  const gram = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const g = dot(diffs[i] as Float64Array, diffs[j] as Float64Array);
      gram[i * n + j] = g;
      gram[j * n + i] = g;
    }
  }
  let u = new Float64Array(n).fill(1 / Math.sqrt(n));
  for (let it = 0; it < PCA_MAX_ITERATIONS; it++) {
    const next = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += (gram[i * n + j] as number) * (u[j] as number);
      next[i] = s;
    }
    normalizeInPlace(next, `layer ${layer} paired-difference Gram iterate`);
    let change = 0;
    for (let i = 0; i < n; i++)
      change = Math.max(change, Math.abs((next[i] as number) - (u[i] as number)));
    u = next;
    if (change < PCA_TOLERANCE) break;
  }
  const v = new Float64Array(h);
  for (let k = 0; k < n; k++) {
    const d = diffs[k] as Float64Array;
    const w = u[k] as number;
    for (let j = 0; j < h; j++) v[j] = (v[j] as number) + w * (d[j] as number);
  }
  normalizeInPlace(v, `layer ${layer} principal axis`);
  let meanProj = 0;
  for (const d of diffs) meanProj += dot(d, v);
  if (meanProj < 0) for (let j = 0; j < h; j++) v[j] = -(v[j] as number);
  return v;
}

/** One layer's unit direction in f64. */
export function directionAt(
  refuse: Residuals,
  comply: Residuals,
  layer: number,
  options: DirectionOptions = {},
): Float64Array {
  assertCompatible(refuse, comply);
  const ri = options.refuseIndices ?? allIndices(refuse.prompts);
  const ci = options.complyIndices ?? allIndices(comply.prompts);
  checkIndices(ri, refuse.prompts, "refuse");
  checkIndices(ci, comply.prompts, "comply");
  const method = options.method ?? "mean-diff";
  if (method === "pca") return pcaDirection(refuse, comply, layer, ri, ci, options.allowZero);
  const mr = meanAt(refuse, layer, ri);
  const mc = meanAt(comply, layer, ci);
  const d = new Float64Array(refuse.hidden);
  for (let j = 0; j < d.length; j++) d[j] = (mr[j] as number) - (mc[j] as number);
  if (method === "projected") {
    // grimjim's projected variant: drop the part of d along the comply mean, so removing d does
    // not also shrink what the model does on ordinary prompts.
    const c = normalizeInPlace(Float64Array.from(mc), `layer ${layer} comply mean`);
    const along = dot(d, c);
    for (let j = 0; j < d.length; j++) d[j] = (d[j] as number) - along * (c[j] as number);
  }
  return normalizeInPlace(d, `layer ${layer} mean difference`, options.allowZero);
}

/**
 * Directions for every layer, `[layers, hidden]` f32 unit vectors. Layer 0 (the embedding output)
 * is included so the tensor lines up with the residual layer axis.
 */
export function computeDirections(
  refuse: Residuals,
  comply: Residuals,
  options: DirectionOptions = {},
): Directions {
  assertCompatible(refuse, comply);
  const out = new Float32Array(refuse.layers * refuse.hidden);
  let zero = 0;
  for (let l = 0; l < refuse.layers; l++) {
    const d = directionAt(refuse, comply, l, { ...options, allowZero: true });
    if (d.every((x) => x === 0)) zero++;
    out.set(d, l * refuse.hidden);
  }
  if (zero === refuse.layers) {
    throw new DirectionsError(
      `the buckets do not differ at any of the ${zero} layers; no direction exists`,
    );
  }
  return { layers: refuse.layers, hidden: refuse.hidden, data: out };
}

/** The `[hidden]` direction of one layer (a view). */
export function directionRow(d: Directions, layer: number): Float32Array {
  return d.data.subarray(layer * d.hidden, (layer + 1) * d.hidden);
}
