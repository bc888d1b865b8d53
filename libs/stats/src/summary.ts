import { type Interval, passAtK, passAtKValues, wilsonInterval } from "./proportions.ts";
import { DEFAULT_INFRA_OUTCOMES, isPass, type TrialRecord } from "./records.ts";
import { normalQuantile } from "./special.ts";

/** Every trial of one variant on one task, reduced. */
export interface TaskCell {
  readonly variant: string;
  readonly taskId: string;
  /** Scored rewards (a null reward of a scored outcome counts as 0), in replica order. */
  readonly rewards: number[];
  /** Trials with an infra outcome: not scored. */
  infraExcluded: number;
  passes: number;
  /** Trial count per outcome class, infra included. */
  readonly outcomes: Record<string, number>;
  /** Sums over scored and infra trials alike. */
  parseErrors: number;
  noCmdTurns: number;
  turns: number;
  /** All trials, infra included. */
  allTrials: number;
}

/** Cells by variant then task, in first-seen order. */
export type CellTable = Map<string, Map<string, TaskCell>>;

/**
 * Groups records into task × variant cells. Infra outcomes are counted, not scored; other
 * outcomes without a reward score 0 (the leaderboard's COALESCE(reward, 0)).
 */
export function buildCells(
  records: readonly TrialRecord[],
  infraOutcomes: readonly string[] = DEFAULT_INFRA_OUTCOMES,
  variants: readonly string[] = [],
): CellTable {
  const table: CellTable = new Map();
  for (const v of variants) table.set(v, new Map());
  const sorted = [...records].sort((x, y) => x.replica - y.replica);
  for (const r of sorted) {
    let byTask = table.get(r.variant);
    if (!byTask) {
      byTask = new Map();
      table.set(r.variant, byTask);
    }
    let cell = byTask.get(r.taskId);
    if (!cell) {
      cell = {
        variant: r.variant,
        taskId: r.taskId,
        rewards: [],
        infraExcluded: 0,
        passes: 0,
        outcomes: {},
        parseErrors: 0,
        noCmdTurns: 0,
        turns: 0,
        allTrials: 0,
      };
      byTask.set(r.taskId, cell);
    }
    cell.allTrials++;
    cell.outcomes[r.outcome] = (cell.outcomes[r.outcome] ?? 0) + 1;
    cell.parseErrors += r.parseErrors;
    cell.noCmdTurns += r.noCmdTurns;
    cell.turns += r.turns;
    if (infraOutcomes.includes(r.outcome)) cell.infraExcluded++;
    else {
      cell.rewards.push(r.reward ?? 0);
      if (isPass(r.reward)) cell.passes++;
    }
  }
  return table;
}

/** Mean scored reward of a cell; null without scored trials. */
export function cellMean(cell: TaskCell): number | null {
  return cell.rewards.length === 0
    ? null
    : cell.rewards.reduce((s, x) => s + x, 0) / cell.rewards.length;
}

/** One variant's headline numbers. */
export interface VariantSummary {
  readonly variant: string;
  /** Scored trials. */
  readonly trials: number;
  readonly infraExcluded: number;
  readonly passes: number;
  /** Tasks with at least one scored trial. */
  readonly tasks: number;
  /** Mean over tasks of the task's mean reward (Terminal-Bench leaderboard definition). */
  readonly accuracy: number | null;
  /** Standard error across tasks: sd of task means (ddof 1) / √T. */
  readonly se: number | null;
  /** accuracy ± z·se, clipped to [0, 1]. */
  readonly ci: Interval | null;
  /** Leaderboard SE √(Σ p̂(1−p̂)/(n_t−1))/T (tasks fixed); null if any task has one trial. */
  readonly seLeaderboard: number | null;
  /** Pooled passes / trials. */
  readonly passRate: number | null;
  readonly wilson: Interval | null;
  /** Unbiased pass@k averaged over tasks, for k up to the smallest trial count of a task. */
  readonly passAtK: readonly { readonly k: number; readonly value: number }[];
  readonly note?: string;
}

/** Summarizes one variant's cells (accuracy, SEs, CIs, Wilson, pass@k). */
export function summarizeVariant(
  variant: string,
  cells: ReadonlyMap<string, TaskCell>,
  confidence = 0.95,
): VariantSummary {
  const scored = [...cells.values()].filter((c) => c.rewards.length > 0);
  let trials = 0;
  let infra = 0;
  let passes = 0;
  for (const c of cells.values()) {
    trials += c.rewards.length;
    infra += c.infraExcluded;
    passes += c.passes;
  }
  const T = scored.length;
  const means = scored.map((c) => cellMean(c)!);
  const accuracy = T === 0 ? null : means.reduce((s, x) => s + x, 0) / T;
  let se: number | null = null;
  if (T >= 2 && accuracy !== null) {
    const v = means.reduce((s, x) => s + (x - accuracy) * (x - accuracy), 0) / (T - 1);
    se = Math.sqrt(v / T);
  }
  const z = normalQuantile(1 - (1 - confidence) / 2);
  const ci =
    accuracy === null || se === null
      ? null
      : { low: Math.max(0, accuracy - z * se), high: Math.min(1, accuracy + z * se) };
  let seLeaderboard: number | null = null;
  if (T > 0 && scored.every((c) => c.rewards.length >= 2)) {
    let s = 0;
    for (const [i, c] of scored.entries())
      s += (means[i]! * (1 - means[i]!)) / (c.rewards.length - 1);
    seLeaderboard = Math.sqrt(s) / T;
  }
  const minTrials = T === 0 ? 0 : Math.min(...scored.map((c) => c.rewards.length));
  const pass = passAtKValues(minTrials).map((k) => ({
    k,
    value: scored.reduce((s, c) => s + passAtK(c.rewards.length, c.passes, k), 0) / T,
  }));
  const notes: string[] = [];
  if (trials === 0)
    notes.push(infra > 0 ? `no scored trials (${infra} infra-excluded)` : "no trials");
  else if (T === 1) notes.push("a single task: no standard error across tasks");
  if (trials > 0 && passes === trials) notes.push("every scored trial passed");
  if (trials > 0 && passes === 0) notes.push("no scored trial passed");
  return {
    variant,
    trials,
    infraExcluded: infra,
    passes,
    tasks: T,
    accuracy,
    se,
    ci,
    seLeaderboard,
    passRate: trials === 0 ? null : passes / trials,
    wilson: wilsonInterval(passes, trials, confidence),
    passAtK: pass,
    ...(notes.length > 0 ? { note: notes.join("; ") } : {}),
  };
}
