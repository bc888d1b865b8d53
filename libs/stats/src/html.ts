import type { Comparison } from "./compare.ts";
import type { Overlaps } from "./overlaps.ts";
import type { ReportData } from "./report.ts";
import { accuracyBarsSvg, escapeXml as esc, heatMapSvg, sweepSvg, upsetSvg } from "./svg.ts";
import type { TestResult } from "./test-result.ts";

const pct = (x: number | null | undefined) =>
  x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`;
const num = (x: number | null | undefined, d = 3) =>
  x === null || x === undefined ? "–" : x.toFixed(d);

function pval(p: number | undefined): string {
  if (p === undefined) return "–";
  return p < 1e-4 ? p.toExponential(2) : p.toFixed(4);
}

/** A section the caller adds to the report (refusal evaluation, direction ranking, ...). */
export interface ReportSection {
  readonly title: string;
  /** Trusted HTML: build it with {@link htmlTable} and {@link escapeHtml}. */
  readonly html: string;
}

/** An HTML table in the report's style; cells are trusted HTML (escape text with `escapeHtml`). */
export function htmlTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  return table(head, rows);
}

/** Escapes text for HTML. */
export function escapeHtml(text: string): string {
  return esc(text);
}

function table(head: readonly string[], rows: readonly (readonly string[])[], cls = ""): string {
  return `<table${cls ? ` class="${cls}"` : ""}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`)
    .join("")}</tbody></table>`;
}

function testRow(t: TestResult | null): string[] | null {
  if (t === null) return null;
  return [
    esc(t.test),
    esc(t.alternative),
    `${t.n} ${esc(t.nUnit)}`,
    t.statistic === null
      ? "–"
      : `${esc(t.statisticName)} = ${Number.isInteger(t.statistic) ? t.statistic : num(t.statistic)}`,
    pval(t.pValue),
    pval(t.pHolm),
    esc(t.note ?? ""),
  ];
}

function comparisonSection(c: Comparison): string {
  const head = `<h3>${esc(c.treatment)} vs ${esc(c.baseline)}</h3>`;
  if (c.commonTasks === 0) return `${head}<p class="warn">${esc(c.note ?? "no common tasks")}</p>`;
  const rows = [c.fisher, c.mcnemar, c.sign, c.permutation, c.cmh]
    .map(testRow)
    .filter((r) => r !== null);
  const cmh = c.cmh
    ? `<p>Mantel–Haenszel common odds ratio (treatment vs baseline): <b>${c.cmh.commonOddsRatioInfinite ? "∞" : num(c.cmh.commonOddsRatio)}</b> over ${c.cmh.strata} task strata.</p>`
    : "";
  const boot = c.bootstrap
    ? `<p>Accuracy difference (treatment − baseline) on ${c.commonTasks} common tasks: <b>${pct(c.difference)}</b> (${pct(c.treatmentAccuracy)} vs ${pct(c.baselineAccuracy)}); ${esc(c.bootstrap.method)}, ${c.bootstrap.resamples} resamples, seed ${c.bootstrap.seed}: ${Math.round(c.bootstrap.confidence * 100)}% CI [${pct(c.bootstrap.ci.low)}, ${pct(c.bootstrap.ci.high)}].</p>`
    : "";
  const skipped = c.mcnemarSkipped
    ? `<p class="muted">McNemar's test not run: ${esc(c.mcnemarSkipped)}.</p>`
    : "";
  const excluded =
    c.excludedTasks.length > 0
      ? `<p class="warn">Excluded from every test above (${c.excludedTasks.length}): ${c.excludedTasks.map((e) => `${esc(e.taskId)} (${esc(e.reason)})`).join(", ")}.</p>`
      : "";
  const power =
    c.power.length > 0
      ? table(
          [
            "difference to detect",
            "α",
            "power",
            "sides",
            "replicas per task",
            "trials per variant",
            "note",
          ],
          c.power.map((p) => [
            pct(p.difference),
            String(p.alpha),
            String(p.power),
            String(p.sides),
            p.replicasPerTask === null ? "–" : String(p.replicasPerTask),
            p.trialsPerVariant === null ? "–" : String(p.trialsPerVariant),
            esc(p.note ?? ""),
          ]),
        ) + `<p class="muted">Power formula: ${esc(c.power[0]!.formula)}.</p>`
      : "";
  return `${head}${boot}${table(["test", "sidedness", "n", "statistic", "p", "p (Holm)", "note"], rows)}${cmh}${skipped}${excluded}<h4>Replicas needed (80% power)</h4>${power}${c.note ? `<p class="warn">${esc(c.note)}</p>` : ""}`;
}

/** Outlier rows shown in the page; summary.json has them all. */
const MAX_OUTLIER_ROWS = 25;

function glanceTable(cs: readonly Comparison[]): string {
  const p = (t: TestResult | null) => (t ? `${pval(t.pValue)} (${pval(t.pHolm)})` : "–");
  const rows = cs.map((c) => {
    const need = c.power.find((x) => Math.abs(x.difference - 0.1) < 1e-9);
    return [
      `${esc(c.treatment)} vs ${esc(c.baseline)}`,
      String(c.commonTasks),
      pct(c.difference),
      c.bootstrap ? `[${pct(c.bootstrap.ci.low)}, ${pct(c.bootstrap.ci.high)}]` : "–",
      p(c.fisher),
      p(c.mcnemar),
      p(c.permutation),
      p(c.cmh),
      c.cmh?.commonOddsRatioInfinite ? "∞" : num(c.cmh?.commonOddsRatio, 2),
      need?.replicasPerTask == null ? "–" : String(need.replicasPerTask),
    ];
  });
  return table(
    [
      "comparison",
      "tasks",
      "Δ accuracy",
      "95% CI (bootstrap)",
      "Fisher p (Holm)",
      "McNemar p (Holm)",
      "permutation p (Holm)",
      "CMH p (Holm)",
      "MH OR",
      "replicas/task for 10 pts",
    ],
    rows,
  );
}

function overlapTable(o: Overlaps): string {
  const rows = o.intersections.map((i) => [
    esc(i.label),
    String(i.tasks.length),
    esc(i.tasks.join(", ")),
  ]);
  rows.push(["solved by none", String(o.unsolved.length), esc(o.unsolved.join(", "))]);
  return table(["set", "tasks", "task ids"], rows, "wrap");
}

const STYLE = `body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}h3{font-size:15px}h4{font-size:13px}
table{border-collapse:collapse;margin:8px 0;font-size:12px}th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.wrap td:last-child{max-width:640px;word-break:break-word}.muted{color:#666;font-size:12px}
.warn{color:#8a4b00;font-size:12px}figure{margin:12px 0;overflow-x:auto}svg{display:block}`;

/**
 * Renders report.html: one self-contained page (inline CSS and SVG, no scripts, no network).
 * `sections` (e.g. the refusal evaluation and the direction ranking of a sweep) come first.
 */
export function renderReportHtml(r: ReportData, sections: readonly ReportSection[] = []): string {
  const s = r.summaries;
  const summaryRows = s.map((v) => [
    esc(v.variant),
    String(v.trials),
    String(v.infraExcluded),
    String(v.passes),
    String(v.tasks),
    pct(v.accuracy),
    num(v.se),
    v.ci ? `[${pct(v.ci.low)}, ${pct(v.ci.high)}]` : "–",
    num(v.seLeaderboard),
    pct(v.passRate),
    v.wilson ? `[${pct(v.wilson.low)}, ${pct(v.wilson.high)}]` : "–",
    v.passAtK.map((p) => `@${p.k}: ${pct(p.value)}`).join(" "),
    esc(v.note ?? ""),
  ]);
  const cellOf = new Map(r.rows.map((row) => [`${row.variant}\u0000${row.taskId}`, row]));
  const heat = heatMapSvg(r.tasks, r.variants, (v, t) => {
    const row = cellOf.get(`${v}\u0000${t}`);
    return row && row.trials > 0 ? row.passes / row.trials : null;
  });
  const outcomeNames = [
    ...new Set(r.failures.variants.flatMap((v) => Object.keys(v.outcomes))),
  ].sort();
  const failureRows = r.failures.variants.map((v) => [
    esc(v.variant),
    String(v.trials),
    ...outcomeNames.map((o) => String(v.outcomes[o] ?? 0)),
    num(v.parseErrorsPerTrial, 2),
    num(v.noCmdTurnsPerTrial, 2),
    num(v.turnsPerTrial, 1),
  ]);
  const outlierRows = r.failures.outliers
    .slice(0, MAX_OUTLIER_ROWS)
    .map((o) => [esc(o.variant), esc(o.taskId), esc(o.metric), num(o.value, 2), num(o.z, 2)]);
  const base = r.summaries.find((x) => x.variant === r.baseline);
  const reference =
    base === undefined || base.accuracy === null
      ? undefined
      : { label: base.variant, accuracy: base.accuracy };
  const sweeps = r.sweeps
    .map((sw) => `<h3>${esc(sw.parameter)}</h3><figure>${sweepSvg(sw, reference)}</figure>`)
    .join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(r.title)}</title><style>${STYLE}</style></head><body>
<h1>${esc(r.title)}</h1>
<p>${r.records} trial records, ${r.variants.length} variants, ${r.tasks.length} tasks. Baseline: <b>${esc(r.baseline ?? "–")}</b>. Outcomes excluded from scoring (infra): ${esc(r.infraOutcomes.join(", "))}. Tests are ${esc(r.alternative)} unless stated; seed ${r.seed}. Holm correction across ${r.holm.comparisons} comparison(s), per test.</p>
${r.notes.length > 0 ? `<ul class="warn">${r.notes.map((n) => `<li>${esc(n)}</li>`).join("")}</ul>` : ""}
${sections.map((x) => `<h2>${esc(x.title)}</h2>\n${x.html}`).join("\n")}
<h2>Accuracy per variant</h2>
<figure>${accuracyBarsSvg(s)}</figure>
${table(["variant", "scored trials", "infra excluded", "passes", "tasks", "accuracy", "SE (tasks)", "95% CI", "SE (leaderboard)", "pass rate", "Wilson 95%", "pass@k", "note"], summaryRows)}
<p class="muted">Accuracy = mean over tasks of the task's mean reward. SE (tasks) = sd of task means / √T, CI = ±1.96·SE; SE (leaderboard) = √(Σ p̂(1−p̂)/(n−1))/T treats tasks as fixed. Wilson interval on pooled passes / scored trials.</p>
<h2>Comparisons</h2>
${r.comparisons.length > 0 ? `<h3>At a glance</h3>${glanceTable(r.comparisons)}<p class="muted">Every test on the tasks both variants have scored trials for; sidedness, n and statistic per test below.</p>` : ""}
${r.comparisons.map(comparisonSection).join("") || '<p class="muted">No comparisons.</p>'}
<h2>Task × variant pass fraction</h2>
<figure>${heat}</figure>
<h2>Overlaps of solved tasks</h2>
<h3>Solved at least once</h3><figure>${upsetSvg(r.overlaps.any, r.variants)}</figure>${overlapTable(r.overlaps.any)}
<h3>Solved by a majority of replicas</h3><figure>${upsetSvg(r.overlaps.majority, r.variants)}</figure>${overlapTable(r.overlaps.majority)}
<h2>Failure modes</h2>
${table(["variant", "trials", ...outcomeNames, "parse errors / trial", "no-cmd turns / trial", "turns / trial"], failureRows)}
<h3>Tasks with unusually high rates (z &gt; ${r.failures.outlierZ})</h3>
${outlierRows.length > 0 ? table(["variant", "task", "metric", "value", "z"], outlierRows) : '<p class="muted">None.</p>'}
${r.failures.outliers.length > MAX_OUTLIER_ROWS ? `<p class="muted">${r.failures.outliers.length - MAX_OUTLIER_ROWS} more in summary.json.</p>` : ""}
<h2>Sweeps</h2>
${sweeps || '<p class="muted">No swept parameter (give variant parameters to plot sweeps).</p>'}
</body></html>
`;
}
