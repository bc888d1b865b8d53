/**
 * `npm run bench:report`: the full statistics of a leaderboard-size sweep (89 tasks × 5 replicas ×
 * 7 variants = 3115 trials) with libs/stats, against the same tests in scipy/statsmodels/numpy
 * (report_baseline.py), side by side; prints times, the ratio and the largest p-value gaps.
 * Needs python3 with scipy, statsmodels and numpy for the baseline half.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BOOTSTRAP_RESAMPLES,
  buildReport,
  PERMUTATION_RESAMPLES,
  syntheticSweep,
} from "../src/index.ts";

/** Timed repetitions of the TypeScript side; the median is reported. */
const RUNS = 3;

const demo = syntheticSweep(7, 89, 5);
const dir = mkdtempSync(join(tmpdir(), "abl-bench-report-"));
try {
  const jsonl = join(dir, "records.jsonl");
  writeFileSync(jsonl, `${demo.records.map((r) => JSON.stringify(r)).join("\n")}\n`);
  const times: number[] = [];
  let report = buildReport(demo.records, { variants: demo.variants, layerAuc: demo.layerAuc });
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    report = buildReport(demo.records, { variants: demo.variants, layerAuc: demo.layerAuc });
    times.push((performance.now() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  const ours = times[Math.floor(RUNS / 2)]!;
  console.log(
    `records: ${demo.records.length} (${report.variants.length} variants × 89 tasks × 5 replicas)`,
  );
  console.log(
    `libs/stats buildReport: ${ours.toFixed(3)} s median of ${RUNS} (Fisher, McNemar, sign, exact permutation, CMH, ${BOOTSTRAP_RESAMPLES}-resample bootstrap, power, Holm, overlaps, failures, sweeps)`,
  );
  const py = spawnSync(
    "python3",
    [
      join(import.meta.dirname, "report_baseline.py"),
      jsonl,
      "base",
      String(BOOTSTRAP_RESAMPLES),
      String(PERMUTATION_RESAMPLES),
    ],
    { encoding: "utf8" },
  );
  if (py.status !== 0) {
    console.log(
      `baseline not run (python3 with scipy/statsmodels/numpy needed): ${py.stderr.trim().split("\n").at(-1)}`,
    );
  } else {
    const base = JSON.parse(py.stdout) as {
      seconds: number;
      comparisons: Record<
        string,
        { fisher: number; cmh: number; permutation: number; mhOddsRatio: number }
      >;
    };
    console.log(
      `scipy/statsmodels baseline (Fisher, CMH, ${PERMUTATION_RESAMPLES}-resample Monte Carlo permutation, ${BOOTSTRAP_RESAMPLES}-resample bootstrap, Holm): ${base.seconds.toFixed(3)} s`,
    );
    console.log(`ratio baseline / ours: ${(base.seconds / ours).toFixed(1)}×`);
    let fisherGap = 0;
    let cmhGap = 0;
    let permGap = 0;
    for (const c of report.comparisons) {
      const b = base.comparisons[c.treatment]!;
      fisherGap = Math.max(fisherGap, Math.abs(c.fisher!.pValue - b.fisher) / b.fisher);
      cmhGap = Math.max(cmhGap, Math.abs(c.cmh!.pValue - b.cmh) / b.cmh);
      permGap = Math.max(permGap, Math.abs(c.permutation!.pValue - b.permutation));
    }
    console.log(
      `largest relative p gap: Fisher ${fisherGap.toExponential(1)}, CMH ${cmhGap.toExponential(1)}; permutation |exact − Monte Carlo| ${permGap.toFixed(4)}`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
