import { type CompareOptions, type Comparison, compareVariants } from "./compare.ts";
import { StatsInputError } from "./errors.ts";
import { computeFailureModes, type FailureModes } from "./failures.ts";
import { holmAdjust } from "./holm.ts";
import { computeOverlaps, type Overlaps } from "./overlaps.ts";
import { DEFAULT_INFRA_OUTCOMES, type TrialRecord } from "./records.ts";
import {
  buildCells,
  type CellTable,
  cellMean,
  summarizeVariant,
  type VariantSummary,
} from "./summary.ts";
import { computeSweeps, type LayerAuc, type Sweep, type VariantInfo } from "./sweeps.ts";
import { ALTERNATIVES, type TestResult } from "./test-result.ts";

/** Options of {@link buildReport}; defaults are merged and checked here. */
export interface ReportOptions extends CompareOptions {
  /** Baseline variant; default a variant named "base" or "baseline", else the first variant. */
  readonly baseline?: string;
  /** Compare every variant with the baseline (default) or every pair. */
  readonly pairs?: "baseline" | "all";
  readonly infraOutcomes?: readonly string[];
  /** Variant parameters (sweeps) and report order; variants listed here appear even with no trials. */
  readonly variants?: readonly VariantInfo[];
  readonly layerAuc?: readonly LayerAuc[];
  readonly title?: string;
}

/** One task × variant row of master_summary.csv. */
export interface TaskVariantRow {
  readonly taskId: string;
  readonly variant: string;
  readonly trials: number;
  readonly infraExcluded: number;
  readonly passes: number;
  readonly meanReward: number | null;
  readonly solvedAny: boolean;
  readonly solvedMajority: boolean;
  readonly parseErrors: number;
  readonly noCmdTurns: number;
  readonly turns: number;
  readonly outcomes: Readonly<Record<string, number>>;
}

/** Everything the report shows; summary.json is exactly this. */
export interface ReportData {
  readonly title: string;
  readonly records: number;
  readonly variants: readonly string[];
  readonly tasks: readonly string[];
  readonly baseline: string | null;
  readonly infraOutcomes: readonly string[];
  readonly alternative: string;
  readonly seed: number;
  readonly summaries: readonly VariantSummary[];
  readonly comparisons: readonly Comparison[];
  /** Tests Holm-corrected across the comparisons, and how many comparisons each family had. */
  readonly holm: { readonly families: readonly string[]; readonly comparisons: number };
  readonly overlaps: { readonly any: Overlaps; readonly majority: Overlaps };
  readonly failures: FailureModes;
  readonly sweeps: readonly Sweep[];
  readonly rows: readonly TaskVariantRow[];
  readonly notes: readonly string[];
}

const HOLM_FAMILIES = ["fisher", "mcnemar", "sign", "permutation", "cmh"] as const;

function orderVariants(records: readonly TrialRecord[], infos: readonly VariantInfo[]): string[] {
  const listed = infos.map((i) => i.variant);
  const seen = [...new Set(records.map((r) => r.variant))]
    .filter((v) => !listed.includes(v))
    .sort();
  return [...listed, ...seen];
}

/**
 * Computes every statistic of the report from trial records: per-variant summaries, the
 * comparisons (with Holm across comparisons per test), overlaps, failure modes and sweeps.
 */
export function buildReport(
  records: readonly TrialRecord[],
  options: ReportOptions = {},
): ReportData {
  const alternative = options.alternative ?? "two-sided";
  if (!ALTERNATIVES.includes(alternative)) {
    throw new StatsInputError(
      `alternative must be one of ${ALTERNATIVES.join(", ")}, got "${alternative}"`,
    );
  }
  const infra = options.infraOutcomes ?? DEFAULT_INFRA_OUTCOMES;
  const infos = options.variants ?? [];
  const variants = orderVariants(records, infos);
  if (variants.length === 0)
    throw new StatsInputError("no trial records and no variants: nothing to report");
  const seen = new Set<string>();
  for (const r of records) {
    const key = JSON.stringify([r.variant, r.taskId, r.replica]);
    if (seen.has(key)) {
      throw new StatsInputError(
        `duplicate trial record: variant "${r.variant}", task "${r.taskId}", replica ${r.replica}`,
      );
    }
    seen.add(key);
  }
  const table: CellTable = buildCells(records, infra, variants);
  const ordered: CellTable = new Map(variants.map((v) => [v, table.get(v)!]));
  const tasks = [...new Set(records.map((r) => r.taskId))].sort();
  const summaries = variants.map((v) => summarizeVariant(v, ordered.get(v)!));
  const notes: string[] = [];
  let baseline: string | null = null;
  if (options.baseline !== undefined) {
    if (!variants.includes(options.baseline)) {
      throw new StatsInputError(
        `baseline "${options.baseline}" is not a variant; variants: ${variants.join(", ")}`,
      );
    }
    baseline = options.baseline;
  } else if (variants.length > 1) {
    baseline = variants.find((v) => v === "base" || v === "baseline") ?? variants[0]!;
  }
  const pairs: [string, string][] = [];
  if (baseline !== null) {
    if (options.pairs === "all") {
      for (let i = 0; i < variants.length; i++) {
        for (let j = i + 1; j < variants.length; j++) pairs.push([variants[i]!, variants[j]!]);
      }
    } else for (const v of variants) if (v !== baseline) pairs.push([baseline, v]);
  } else notes.push("one variant only: no comparisons");
  let comparisons = pairs.map(([a, b]) => compareVariants(ordered, a, b, options));
  for (const c of comparisons) {
    if (c.excludedTasks.length > 0) {
      notes.push(
        `${c.treatment} vs ${c.baseline}: ${c.excludedTasks.length} task(s) not in both variants were excluded from the paired tests`,
      );
    }
  }
  // Holm across comparisons, one family per test.
  for (const family of HOLM_FAMILIES) {
    const idx = comparisons.map((c, i) => (c[family] ? i : -1)).filter((i) => i >= 0);
    if (idx.length === 0) continue;
    const adjusted = holmAdjust(idx.map((i) => comparisons[i]![family]!.pValue));
    comparisons = comparisons.map((c, i) => {
      const k = idx.indexOf(i);
      if (k < 0) return c;
      const t = c[family] as TestResult;
      return { ...c, [family]: { ...t, pHolm: adjusted[k]! } };
    });
  }
  const any = computeOverlaps(ordered, "any");
  const majority = computeOverlaps(ordered, "majority");
  const rows: TaskVariantRow[] = [];
  for (const taskId of tasks) {
    for (const v of variants) {
      const cell = ordered.get(v)!.get(taskId);
      if (!cell) continue;
      rows.push({
        taskId,
        variant: v,
        trials: cell.rewards.length,
        infraExcluded: cell.infraExcluded,
        passes: cell.passes,
        meanReward: cellMean(cell),
        solvedAny: any.solved[v]!.includes(taskId),
        solvedMajority: majority.solved[v]!.includes(taskId),
        parseErrors: cell.parseErrors,
        noCmdTurns: cell.noCmdTurns,
        turns: cell.turns,
        outcomes: cell.outcomes,
      });
    }
  }
  for (const s of summaries) if (s.note !== undefined) notes.push(`${s.variant}: ${s.note}`);
  if (tasks.length === 1) notes.push("a single task: accuracy has no across-task standard error");
  return {
    title: options.title ?? "abliterate benchmark report",
    records: records.length,
    variants,
    tasks,
    baseline,
    infraOutcomes: infra,
    alternative,
    seed: options.seed ?? 1,
    summaries,
    comparisons,
    holm: { families: [...HOLM_FAMILIES], comparisons: comparisons.length },
    overlaps: { any, majority },
    failures: computeFailureModes(ordered),
    sweeps: computeSweeps(summaries, infos, options.layerAuc ?? []),
    rows,
    notes,
  };
}
