import { StatsInputError } from "./errors.ts";
import { binomCdf } from "./special.ts";
import type { Alternative, TestResult } from "./test-result.ts";

/**
 * McNemar's exact test on paired binary outcomes. `onlySecond` = pairs where only the second
 * (treatment) variant passed, `onlyFirst` = only the first (baseline). Exact binomial on the
 * discordant pairs (statsmodels `mcnemar(exact=True)`); `greater` = treatment better.
 * Statistic: min(onlyFirst, onlySecond) for two-sided (as statsmodels), else `onlySecond`.
 */
export function mcnemarExact(
  onlyFirst: number,
  onlySecond: number,
  alternative: Alternative = "two-sided",
): TestResult {
  if (![onlyFirst, onlySecond].every((v) => Number.isInteger(v) && v >= 0)) {
    throw new StatsInputError(
      `McNemar's test needs non-negative integer discordant counts, got ${onlyFirst} and ${onlySecond}`,
    );
  }
  const n = onlyFirst + onlySecond;
  let p: number;
  let statistic: number;
  if (alternative === "two-sided") {
    statistic = Math.min(onlyFirst, onlySecond);
    p = n === 0 ? 1 : Math.min(1, 2 * binomCdf(statistic, n, 0.5));
  } else {
    statistic = onlySecond;
    // greater: P(X ≥ onlySecond) = P(X ≤ onlyFirst) by symmetry of Bin(n, 1/2).
    p = n === 0 ? 1 : binomCdf(alternative === "greater" ? onlyFirst : onlySecond, n, 0.5);
  }
  return {
    test: "McNemar's exact test",
    alternative,
    n,
    nUnit: "discordant tasks",
    statistic,
    statisticName: alternative === "two-sided" ? "min discordant" : "treatment-only passes",
    pValue: p,
  };
}
