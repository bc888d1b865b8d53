import { StatsInputError } from "./errors.ts";
import { hypergeomPmf } from "./special.ts";
import { type Alternative, finiteOrNull, type TestResult } from "./test-result.ts";

/** Relative tolerance when collecting tables "as or less likely" than the observed one (as R). */
const TIE_TOLERANCE = 1 + 1e-7;

/**
 * Fisher's exact test on a 2×2 table [[a, b], [c, d]] (rows = variants, columns = pass/fail).
 * `greater` tests odds ratio > 1 (row 1 passes more). Two-sided sums every table no more likely
 * than the observed one, as scipy.stats.fisher_exact does. Statistic: the sample odds ratio ad/bc.
 */
export function fisherExact(
  a: number,
  b: number,
  c: number,
  d: number,
  alternative: Alternative = "two-sided",
): TestResult {
  for (const [k, v] of Object.entries({ a, b, c, d })) {
    if (!Number.isInteger(v) || v < 0) {
      throw new StatsInputError(
        `Fisher's exact test: cell ${k} must be a non-negative integer, got ${v}`,
      );
    }
  }
  const total = a + b + c + d;
  const row1 = a + b;
  const col1 = a + c;
  const lo = Math.max(0, row1 + col1 - total);
  const hi = Math.min(row1, col1);
  const pmf = (x: number) => hypergeomPmf(x, total, col1, row1);
  let p = 0;
  if (alternative === "greater") for (let x = a; x <= hi; x++) p += pmf(x);
  else if (alternative === "less") for (let x = lo; x <= a; x++) p += pmf(x);
  else {
    const observed = pmf(a) * TIE_TOLERANCE;
    for (let x = lo; x <= hi; x++) {
      const px = pmf(x);
      if (px <= observed) p += px;
    }
  }
  const oddsRatio =
    b * c === 0 ? (a * d === 0 ? Number.NaN : Number.POSITIVE_INFINITY) : (a * d) / (b * c);
  return {
    test: "Fisher's exact test",
    alternative,
    n: total,
    nUnit: "trials",
    statistic: finiteOrNull(oddsRatio),
    statisticName: "odds ratio",
    pValue: Math.min(1, p),
    ...(Number.isFinite(oddsRatio)
      ? {}
      : { note: "sample odds ratio undefined or infinite (a zero cell)" }),
  };
}
