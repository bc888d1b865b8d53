import { StatsInputError } from "./errors.ts";
import { chiSquare1Sf, normalSf } from "./special.ts";
import { type Alternative, finiteOrNull, type TestResult } from "./test-result.ts";

/** One stratum's 2×2 table: rows treatment/baseline, columns pass/fail. */
export interface Table2x2 {
  readonly a: number;
  readonly b: number;
  readonly c: number;
  readonly d: number;
}

/** The CMH test result plus the Mantel–Haenszel common odds ratio. */
export interface CmhResult extends TestResult {
  /** Σ(a·d/n) / Σ(b·c/n) over strata; null when undefined or infinite. */
  readonly commonOddsRatio: number | null;
  /** True when the MH odds ratio is +∞ (no stratum has a treatment fail with a baseline pass). */
  readonly commonOddsRatioInfinite: boolean;
  /** Strata used (a stratum with fewer than 2 trials carries no information and is dropped). */
  readonly strata: number;
}

/**
 * Cochran–Mantel–Haenszel test of a common odds ratio of 1 across strata (tasks), with the
 * continuity correction by default (statsmodels `StratifiedTable.test_null_odds`). The corrected
 * |Σa − ΣE| − ½ is floored at 0 (statsmodels squares a negative value instead). One-sided
 * alternatives use the signed square root as a standard normal z.
 */
export function cochranMantelHaenszel(
  strata: readonly Table2x2[],
  options: { alternative?: Alternative; correction?: boolean } = {},
): CmhResult {
  const alternative = options.alternative ?? "two-sided";
  const correction = options.correction ?? true;
  let sumA = 0;
  let sumE = 0;
  let sumV = 0;
  let orNum = 0;
  let orDen = 0;
  let used = 0;
  let trials = 0;
  for (const [i, t] of strata.entries()) {
    if (![t.a, t.b, t.c, t.d].every((v) => Number.isInteger(v) && v >= 0)) {
      throw new StatsInputError(`CMH: stratum ${i} has a cell that is not a non-negative integer`);
    }
    const n = t.a + t.b + t.c + t.d;
    if (n < 2) continue;
    used++;
    trials += n;
    const row1 = t.a + t.b;
    const row2 = t.c + t.d;
    const col1 = t.a + t.c;
    const col2 = t.b + t.d;
    sumA += t.a;
    sumE += (row1 * col1) / n;
    sumV += (row1 * row2 * col1 * col2) / (n * n * (n - 1));
    orNum += (t.a * t.d) / n;
    orDen += (t.b * t.c) / n;
  }
  const diff = sumA - sumE;
  const cc = correction ? 0.5 : 0;
  let statistic: number;
  let p: number;
  let note: string | undefined;
  if (sumV === 0) {
    statistic = 0;
    p = 1;
    note =
      "no stratum has both a pass and a fail in both rows' margins: the statistic is undefined, p set to 1";
  } else {
    const dev = Math.max(0, Math.abs(diff) - cc);
    statistic = (dev * dev) / sumV;
    if (alternative === "two-sided") p = chiSquare1Sf(statistic);
    else {
      const signed = alternative === "greater" ? diff : -diff;
      p = normalSf((signed - cc) / Math.sqrt(sumV));
    }
  }
  const or = orDen === 0 ? (orNum === 0 ? Number.NaN : Number.POSITIVE_INFINITY) : orNum / orDen;
  return {
    test: correction
      ? "Cochran–Mantel–Haenszel test (stratified by task, continuity-corrected)"
      : "Cochran–Mantel–Haenszel test (stratified by task)",
    alternative,
    n: trials,
    nUnit: "trials",
    statistic,
    statisticName: "chi-square (1 df)",
    pValue: p,
    commonOddsRatio: finiteOrNull(or),
    commonOddsRatioInfinite: or === Number.POSITIVE_INFINITY,
    strata: used,
    ...(note === undefined ? {} : { note }),
  };
}
