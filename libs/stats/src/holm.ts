import { StatsInputError } from "./errors.ts";

/**
 * Holm's step-down adjustment of p-values (family-wise error), in the input order; matches
 * statsmodels `multipletests(method="holm")`.
 */
export function holmAdjust(pValues: readonly number[]): number[] {
  for (const [i, p] of pValues.entries()) {
    if (!(p >= 0 && p <= 1)) throw new StatsInputError(`Holm: p-value ${i} is ${p}, not in [0, 1]`);
  }
  const m = pValues.length;
  const order = pValues.map((p, i) => ({ p, i })).sort((x, y) => x.p - y.p);
  const out = new Array<number>(m);
  let running = 0;
  for (const [rank, { p, i }] of order.entries()) {
    running = Math.max(running, Math.min(1, (m - rank) * p));
    out[i] = running;
  }
  return out;
}
