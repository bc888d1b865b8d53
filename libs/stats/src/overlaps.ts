import type { CellTable } from "./summary.ts";

/** How a task counts as solved by a variant. */
export type SolvedRule = "any" | "majority";

/** One exclusive intersection: tasks solved by exactly these variants and no others. */
export interface Intersection {
  /** Variants in the set, in report order. */
  readonly variants: readonly string[];
  /** "A only", "A ∩ B", ... */
  readonly label: string;
  readonly tasks: readonly string[];
}

/** Overlap of solved tasks under one rule. */
export interface Overlaps {
  readonly rule: SolvedRule;
  /** Tasks each variant solves. */
  readonly solved: Readonly<Record<string, readonly string[]>>;
  /** Non-empty exclusive intersections, largest first; tasks solved by none are `unsolved`. */
  readonly intersections: readonly Intersection[];
  readonly unsolved: readonly string[];
}

/**
 * Solved tasks per variant (at least one pass, or passes on more than half of the scored
 * trials) and the exclusive intersections an UpSet plot shows.
 */
export function computeOverlaps(table: CellTable, rule: SolvedRule): Overlaps {
  const variants = [...table.keys()];
  const allTasks = [...new Set(variants.flatMap((v) => [...table.get(v)!.keys()]))].sort();
  const solved: Record<string, string[]> = {};
  for (const v of variants) {
    solved[v] = [];
    for (const [taskId, cell] of table.get(v)!) {
      const n = cell.rewards.length;
      const ok = rule === "any" ? cell.passes > 0 : n > 0 && cell.passes * 2 > n;
      if (ok) solved[v].push(taskId);
    }
    solved[v].sort();
  }
  const sets = new Map<string, { variants: string[]; tasks: string[] }>();
  const unsolved: string[] = [];
  for (const taskId of allTasks) {
    const members = variants.filter((v) => solved[v]!.includes(taskId));
    if (members.length === 0) {
      unsolved.push(taskId);
      continue;
    }
    const key = JSON.stringify(members);
    let s = sets.get(key);
    if (!s) {
      s = { variants: members, tasks: [] };
      sets.set(key, s);
    }
    s.tasks.push(taskId);
  }
  const intersections = [...sets.values()]
    .map((s) => ({
      variants: s.variants,
      label: s.variants.length === 1 ? `${s.variants[0]} only` : s.variants.join(" ∩ "),
      tasks: s.tasks,
    }))
    .sort((x, y) => y.tasks.length - x.tasks.length || x.label.localeCompare(y.label));
  return { rule, solved, intersections, unsolved };
}
