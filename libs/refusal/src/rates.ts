/** Rate statistics: Wilson score intervals and Cohen's kappa between two judges. */

/** z for a two-sided 95 % interval. */
export const Z_95 = 1.959963984540054;

/** A proportion with its Wilson 95 % interval. */
export interface Rate {
  readonly count: number;
  readonly n: number;
  readonly rate: number;
  readonly low: number;
  readonly high: number;
}

/** Wilson score interval; for n = 0 the rate is NaN and the interval [0, 1]. */
export function wilsonRate(count: number, n: number, z = Z_95): Rate {
  if (!Number.isInteger(count) || !Number.isInteger(n) || count < 0 || count > n) {
    throw new RangeError(`rate needs integers 0 ≤ count ≤ n, got ${count} of ${n}`);
  }
  if (n === 0) return { count, n, rate: Number.NaN, low: 0, high: 1 };
  const p = count / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return { count, n, rate: p, low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/** Cohen's kappa of two binary raters; 1 when both are constant and agree everywhere. */
export function cohensKappa(a: readonly boolean[], b: readonly boolean[]): number {
  if (a.length !== b.length || a.length === 0)
    throw new RangeError(
      `kappa needs two equal, non-empty rating lists, got ${a.length} and ${b.length}`,
    );
  const n = a.length;
  let agree = 0;
  let pa = 0;
  let pb = 0;
  for (let i = 0; i < n; i++) {
    if (a[i] === b[i]) agree++;
    if (a[i]) pa++;
    if (b[i]) pb++;
  }
  const po = agree / n;
  const pe = (pa / n) * (pb / n) + (1 - pa / n) * (1 - pb / n);
  if (pe === 1) return po === 1 ? 1 : 0;
  return (po - pe) / (1 - pe);
}
