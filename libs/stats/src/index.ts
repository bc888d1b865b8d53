export { type CmhResult, cochranMantelHaenszel, type Table2x2 } from "./cmh.ts";
export {
  type CompareOptions,
  type Comparison,
  compareVariants,
  DEFAULT_POWER_DIFFERENCES,
  type ExcludedTask,
} from "./compare.ts";
export { MASTER_SUMMARY_COLUMNS, masterSummaryCsv } from "./csv.ts";
export { StatsInputError } from "./errors.ts";
export {
  computeFailureModes,
  type FailureModes,
  type FailureOutlier,
  OUTLIER_Z,
  type VariantFailures,
} from "./failures.ts";
export { fisherExact } from "./fisher.ts";
export { holmAdjust } from "./holm.ts";
export { escapeHtml, htmlTable, type ReportSection, renderReportHtml } from "./html.ts";
export { mcnemarExact } from "./mcnemar.ts";
export { computeOverlaps, type Intersection, type Overlaps, type SolvedRule } from "./overlaps.ts";
export {
  BOOTSTRAP_RESAMPLES,
  type BootstrapResult,
  MAX_EXACT_PERMUTATION_TASKS,
  type PairedTask,
  PERMUTATION_RESAMPLES,
  pairedBootstrap,
  permutationTest,
  signTest,
  taskDifferences,
} from "./paired.ts";
export { POWER_FORMULA, type PowerResult, replicasForPower } from "./power.ts";
export { type Interval, passAtK, passAtKValues, wilsonInterval } from "./proportions.ts";
export {
  DEFAULT_INFRA_OUTCOMES,
  isPass,
  PASS_REWARD,
  parseTrialJsonl,
  parseTrialRecord,
  type TrialRecord,
} from "./records.ts";
export { buildReport, type ReportData, type ReportOptions, type TaskVariantRow } from "./report.ts";
export { createRng, type Rng } from "./rng.ts";
export { chiSquare1Sf, normalCdf, normalQuantile } from "./special.ts";
export {
  buildCells,
  type CellTable,
  summarizeVariant,
  type TaskCell,
  type VariantSummary,
} from "./summary.ts";
export { accuracyBarsSvg, heatMapSvg, MAX_UPSET_COLUMNS, sweepSvg, upsetSvg } from "./svg.ts";
export {
  computeSweeps,
  type LayerAuc,
  type Sweep,
  type SweepPoint,
  type VariantInfo,
} from "./sweeps.ts";
export {
  generateSyntheticRecords,
  type SyntheticOptions,
  type SyntheticResult,
  type SyntheticVariant,
  syntheticSweep,
} from "./synthetic.ts";
export { ALTERNATIVES, type Alternative, type TestResult } from "./test-result.ts";
export { REPORT_FILES, reportJson, writeReport } from "./write-report.ts";
