import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { masterSummaryCsv } from "./csv.ts";
import { renderReportHtml } from "./html.ts";
import type { ReportData } from "./report.ts";

/** Files the report writes, in write order (summary.json last: its presence means complete). */
export const REPORT_FILES = ["master_summary.csv", "report.html", "summary.json"] as const;

/** JSON with non-finite numbers as null. */
export function reportJson(report: ReportData): string {
  return `${JSON.stringify(report, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 1)}\n`;
}

/**
 * Writes master_summary.csv, report.html and summary.json into `dir`, each to a temporary name
 * then renamed, summary.json last. Returns the written paths.
 */
export async function writeReport(
  dir: string,
  report: ReportData,
  signal?: AbortSignal,
): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const contents: Record<(typeof REPORT_FILES)[number], string> = {
    "master_summary.csv": masterSummaryCsv(report),
    "report.html": renderReportHtml(report),
    "summary.json": reportJson(report),
  };
  const written: string[] = [];
  for (const name of REPORT_FILES) {
    signal?.throwIfAborted();
    const path = join(dir, name);
    const tmp = join(dir, `.${name}.${process.pid}.tmp`);
    try {
      await writeFile(tmp, contents[name]);
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    written.push(path);
  }
  return written;
}
