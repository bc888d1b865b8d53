import { type CmhResult, cochranMantelHaenszel, type Table2x2 } from "./cmh.ts";
import { fisherExact } from "./fisher.ts";
import { mcnemarExact } from "./mcnemar.ts";
import {
  type BootstrapResult,
  type PairedTask,
  pairedBootstrap,
  permutationTest,
  signTest,
  taskDifferences,
} from "./paired.ts";
import { type PowerResult, replicasForPower } from "./power.ts";
import type { CellTable, TaskCell } from "./summary.ts";
import type { Alternative, TestResult } from "./test-result.ts";

/** Options of {@link compareVariants}. */
export interface CompareOptions {
  readonly alternative?: Alternative;
  readonly seed?: number;
  readonly bootstrapResamples?: number;
  readonly cmhCorrection?: boolean;
  /** Differences (absolute accuracy) to plan power for, besides the observed one. */
  readonly powerDifferences?: readonly number[];
  readonly signal?: AbortSignal;
}

/** A task left out of a comparison, and why. */
export interface ExcludedTask {
  readonly taskId: string;
  readonly reason: string;
}

/** Everything said about treatment vs baseline on their common tasks. */
export interface Comparison {
  readonly baseline: string;
  readonly treatment: string;
  /** Tasks with scored trials in both variants: every test below runs on these only. */
  readonly commonTasks: number;
  readonly excludedTasks: readonly ExcludedTask[];
  readonly baselineAccuracy: number | null;
  readonly treatmentAccuracy: number | null;
  /** Treatment − baseline accuracy on the common tasks. */
  readonly difference: number | null;
  /** Fisher's exact test on pooled pass/fail counts of the common tasks. */
  readonly fisher: TestResult | null;
  /** McNemar's exact test; only when every common task has exactly one trial per variant. */
  readonly mcnemar: TestResult | null;
  readonly mcnemarSkipped?: string;
  readonly bootstrap: BootstrapResult | null;
  readonly sign: TestResult | null;
  readonly permutation: TestResult | null;
  readonly cmh: CmhResult | null;
  readonly power: readonly PowerResult[];
  readonly note?: string;
}

/** Default extra differences for the power table (5 and 10 accuracy points). */
export const DEFAULT_POWER_DIFFERENCES: readonly number[] = [0.05, 0.1];

/**
 * Compares a treatment variant with a baseline on the tasks both have scored trials for; tasks
 * present in only one (or with only infra-excluded trials in one) are listed and left out of
 * every test.
 */
export function compareVariants(
  table: CellTable,
  baseline: string,
  treatment: string,
  options: CompareOptions = {},
): Comparison {
  const alternative = options.alternative ?? "two-sided";
  const base = table.get(baseline) ?? new Map<string, TaskCell>();
  const treat = table.get(treatment) ?? new Map<string, TaskCell>();
  const allTasks = [...new Set([...base.keys(), ...treat.keys()])];
  const excluded: ExcludedTask[] = [];
  const paired: PairedTask[] = [];
  const strata: Table2x2[] = [];
  for (const taskId of allTasks) {
    const b = base.get(taskId);
    const t = treat.get(taskId);
    const bn = b?.rewards.length ?? 0;
    const tn = t?.rewards.length ?? 0;
    if (bn === 0 || tn === 0) {
      const missing = [bn === 0 ? baseline : undefined, tn === 0 ? treatment : undefined].filter(
        Boolean,
      );
      excluded.push({ taskId, reason: `no scored trial in ${missing.join(" and ")}` });
      continue;
    }
    paired.push({ taskId, first: b!.rewards, second: t!.rewards });
    strata.push({ a: t!.passes, b: tn - t!.passes, c: b!.passes, d: bn - b!.passes });
  }
  const T = paired.length;
  if (T === 0) {
    return {
      baseline,
      treatment,
      commonTasks: 0,
      excludedTasks: excluded,
      baselineAccuracy: null,
      treatmentAccuracy: null,
      difference: null,
      fisher: null,
      mcnemar: null,
      mcnemarSkipped: "no common tasks",
      bootstrap: null,
      sign: null,
      permutation: null,
      cmh: null,
      power: [],
      note: "no task has scored trials in both variants: nothing to compare",
    };
  }
  const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const baseAcc = mean(paired.map((p) => mean(p.first)));
  const treatAcc = mean(paired.map((p) => mean(p.second)));
  const sum = (f: (s: Table2x2) => number) => strata.reduce((acc, s) => acc + f(s), 0);
  const fisher = fisherExact(
    sum((s) => s.a),
    sum((s) => s.b),
    sum((s) => s.c),
    sum((s) => s.d),
    alternative,
  );
  let mcnemar: TestResult | null = null;
  let mcnemarSkipped: string | undefined;
  if (paired.every((p) => p.first.length === 1 && p.second.length === 1)) {
    const onlyFirst = strata.filter((s) => s.c === 1 && s.a === 0).length;
    const onlySecond = strata.filter((s) => s.a === 1 && s.c === 0).length;
    mcnemar = mcnemarExact(onlyFirst, onlySecond, alternative);
  } else {
    mcnemarSkipped =
      "tasks have more than one replica: see the paired bootstrap, sign/permutation and CMH tests";
  }
  const diffs = taskDifferences(paired);
  const seed = options.seed ?? 1;
  const bootstrap = pairedBootstrap(paired, {
    seed,
    ...(options.bootstrapResamples === undefined ? {} : { resamples: options.bootstrapResamples }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const observed = Math.abs(treatAcc - baseAcc);
  const targets = [observed, ...(options.powerDifferences ?? DEFAULT_POWER_DIFFERENCES)];
  const power = targets
    .filter((d, i) => d > 0 && targets.indexOf(d) === i)
    .map((d) => replicasForPower(paired, d, { sides: alternative === "two-sided" ? 2 : 1 }));
  return {
    baseline,
    treatment,
    commonTasks: T,
    excludedTasks: excluded,
    baselineAccuracy: baseAcc,
    treatmentAccuracy: treatAcc,
    difference: treatAcc - baseAcc,
    fisher,
    mcnemar,
    ...(mcnemarSkipped === undefined ? {} : { mcnemarSkipped }),
    bootstrap,
    sign: signTest(diffs, alternative),
    permutation: permutationTest(diffs, alternative, seed),
    cmh: cochranMantelHaenszel(strata, {
      alternative,
      ...(options.cmhCorrection === undefined ? {} : { correction: options.cmhCorrection }),
    }),
    power,
    ...(T === 1 ? { note: "a single common task: paired tests have almost no power" } : {}),
  };
}
