import type { CellTable } from "./summary.ts";

/**
 * Tasks whose rate sits more than this many standard deviations above the variant's mean are
 * listed. 3 rather than 2: with a handful of replicas a single event moves a task's rate by 1/n,
 * and z > 2 then flags a few percent of all tasks by chance alone.
 */
export const OUTLIER_Z = 3;

/** One task flagged as unusual for a variant. */
export interface FailureOutlier {
  readonly variant: string;
  readonly taskId: string;
  /** Which rate: parse errors per trial, no-cmd turns per trial, or infra failures per trial. */
  readonly metric: "parseErrorsPerTrial" | "noCmdTurnsPerTrial" | "infraRate";
  readonly value: number;
  readonly z: number;
}

/** Failure modes of one variant. */
export interface VariantFailures {
  readonly variant: string;
  /** Trials per outcome class, infra included. */
  readonly outcomes: Readonly<Record<string, number>>;
  readonly trials: number;
  readonly parseErrorsPerTrial: number | null;
  readonly noCmdTurnsPerTrial: number | null;
  readonly turnsPerTrial: number | null;
}

/** Failure-mode tables and the z-score outliers. */
export interface FailureModes {
  readonly variants: readonly VariantFailures[];
  readonly outliers: readonly FailureOutlier[];
  readonly outlierZ: number;
}

/**
 * Outcome classes per variant, parse errors and no-cmd turns per trial, and tasks whose rates
 * are unusually high within their variant (z-score above {@link OUTLIER_Z}, population sd over
 * the variant's tasks).
 */
export function computeFailureModes(table: CellTable): FailureModes {
  const variants: VariantFailures[] = [];
  const outliers: FailureOutlier[] = [];
  for (const [variant, cells] of table) {
    const outcomes: Record<string, number> = {};
    let trials = 0;
    let parse = 0;
    let noCmd = 0;
    let turns = 0;
    for (const c of cells.values()) {
      for (const [o, n] of Object.entries(c.outcomes)) outcomes[o] = (outcomes[o] ?? 0) + n;
      trials += c.allTrials;
      parse += c.parseErrors;
      noCmd += c.noCmdTurns;
      turns += c.turns;
    }
    variants.push({
      variant,
      outcomes,
      trials,
      parseErrorsPerTrial: trials === 0 ? null : parse / trials,
      noCmdTurnsPerTrial: trials === 0 ? null : noCmd / trials,
      turnsPerTrial: trials === 0 ? null : turns / trials,
    });
    const list = [...cells.values()].filter((c) => c.allTrials > 0);
    const metrics = {
      parseErrorsPerTrial: (c: (typeof list)[number]) => c.parseErrors / c.allTrials,
      noCmdTurnsPerTrial: (c: (typeof list)[number]) => c.noCmdTurns / c.allTrials,
      infraRate: (c: (typeof list)[number]) => c.infraExcluded / c.allTrials,
    } as const;
    for (const [metric, f] of Object.entries(metrics) as [
      FailureOutlier["metric"],
      (c: (typeof list)[number]) => number,
    ][]) {
      const xs = list.map(f);
      if (xs.length < 3) continue;
      const m = xs.reduce((s, x) => s + x, 0) / xs.length;
      const sd = Math.sqrt(xs.reduce((s, x) => s + (x - m) * (x - m), 0) / xs.length);
      if (sd === 0) continue;
      list.forEach((c, i) => {
        const z = (xs[i]! - m) / sd;
        if (z > OUTLIER_Z) outliers.push({ variant, taskId: c.taskId, metric, value: xs[i]!, z });
      });
    }
  }
  outliers.sort((a, b) => b.z - a.z);
  return { variants, outliers, outlierZ: OUTLIER_Z };
}
