/** Which side a test looks at. `greater` means the second (treatment) variant is better. */
export type Alternative = "two-sided" | "greater" | "less";

/** Every alternative, for option validation. */
export const ALTERNATIVES: readonly Alternative[] = ["two-sided", "greater", "less"];

/** One hypothesis test's result, always naming the test, the side and the n it ran on. */
export interface TestResult {
  /** Test name as printed, e.g. "Fisher's exact test (pooled trials)". */
  readonly test: string;
  readonly alternative: Alternative;
  /** Sample size the test used. */
  readonly n: number;
  /** What `n` counts: "trials", "tasks", "discordant tasks", "non-zero task differences". */
  readonly nUnit: string;
  /** Test statistic (null when the test has none, e.g. Fisher's exact uses the table). */
  readonly statistic: number | null;
  /** Name of the statistic, e.g. "odds ratio", "chi-square", "positive differences". */
  readonly statisticName: string;
  readonly pValue: number;
  /** Holm-adjusted p across the comparisons of one report; set by the report. */
  readonly pHolm?: number;
  /** Anything a reader must know: a dropped stratum, Monte Carlo instead of exact, ... */
  readonly note?: string;
}

/** Finite numbers stay; ±Infinity and NaN become null (JSON has no infinities). */
export function finiteOrNull(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}
