import type { ReportData } from "./report.ts";

function cell(v: string | number | boolean | null): string {
  if (v === null) return "";
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Column order of master_summary.csv. */
export const MASTER_SUMMARY_COLUMNS = [
  "task_id",
  "variant",
  "trials",
  "infra_excluded",
  "passes",
  "mean_reward",
  "solved_any",
  "solved_majority",
  "parse_errors",
  "no_cmd_turns",
  "turns",
  "outcomes",
] as const;

/** master_summary.csv: one row per task × variant (RFC 4180 quoting, empty for null). */
export function masterSummaryCsv(report: ReportData): string {
  const lines = [MASTER_SUMMARY_COLUMNS.join(",")];
  for (const r of report.rows) {
    const outcomes = Object.entries(r.outcomes)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, n]) => `${k}=${n}`)
      .join(";");
    lines.push(
      [
        r.taskId,
        r.variant,
        r.trials,
        r.infraExcluded,
        r.passes,
        r.meanReward,
        r.solvedAny,
        r.solvedMajority,
        r.parseErrors,
        r.noCmdTurns,
        r.turns,
        outcomes,
      ]
        .map(cell)
        .join(","),
    );
  }
  return `${lines.join("\n")}\n`;
}
