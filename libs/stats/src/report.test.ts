import assert from "node:assert/strict";
import { test } from "node:test";
import { masterSummaryCsv } from "./csv.ts";
import { StatsInputError } from "./errors.ts";
import { renderReportHtml } from "./html.ts";
import { pairedBootstrap } from "./paired.ts";
import { parseTrialJsonl, type TrialRecord } from "./records.ts";
import { buildReport } from "./report.ts";
import { generateSyntheticRecords, syntheticSweep } from "./synthetic.ts";

function rec(
  variant: string,
  taskId: string,
  replica: number,
  reward: number | null,
  outcome?: string,
): TrialRecord {
  return {
    variant,
    taskId,
    replica,
    reward,
    outcome: outcome ?? (reward === 1 ? "passed" : "failed"),
    turns: 5,
    parseErrors: 0,
    noCmdTurns: 0,
  };
}

test("research run: 7/89 vs 3/89 with one replica reports Fisher two-sided 0.33 and McNemar", () => {
  const records: TrialRecord[] = [];
  for (let t = 0; t < 89; t++) {
    const id = `t${t}`;
    records.push(rec("base", id, 0, t < 3 ? 1 : 0));
    records.push(rec("abl", id, 0, t >= 1 && t < 8 ? 1 : 0));
  }
  const r = buildReport(records);
  assert.equal(r.baseline, "base");
  const c = r.comparisons[0]!;
  assert.equal(c.treatment, "abl");
  assert.equal(c.fisher!.alternative, "two-sided");
  assert.equal(c.fisher!.n, 178);
  assert.equal(c.fisher!.pValue.toFixed(2), "0.33");
  assert.ok(c.mcnemar, "McNemar runs with one replica");
  // Discordant: base-only t0; abl-only t3..t7 → 1 vs 5.
  assert.equal(c.mcnemar!.n, 6);
  assert.equal(c.mcnemar!.statistic, 1);
  const one = buildReport(records, { alternative: "greater" }).comparisons[0]!;
  assert.equal(one.fisher!.pValue.toFixed(3), "0.165");
  assert.equal(one.fisher!.alternative, "greater");
  // Power: the observed 4.5-point difference needs more than one replica.
  assert.ok(c.power[0]!.replicasPerTask! > 1);
});

test("degenerate input: empty variant, all passes, all failures, one-sided tasks, infra-only", () => {
  const records = [
    rec("base", "a", 0, 0),
    rec("base", "a", 1, 0),
    rec("base", "b", 0, 0),
    rec("base", "b", 1, 0),
    rec("base", "only-base", 0, 1),
    rec("good", "a", 0, 1),
    rec("good", "a", 1, 1),
    rec("good", "b", 0, 1),
    rec("good", "b", 1, 1),
    rec("good", "only-good", 0, 1),
    rec("flaky", "a", 0, null, "environment_error"),
  ];
  const r = buildReport(records, {
    variants: [
      { variant: "base", params: {} },
      { variant: "good", params: {} },
      { variant: "empty", params: {} },
      { variant: "flaky", params: {} },
    ],
  });
  const byName = new Map(r.summaries.map((s) => [s.variant, s]));
  assert.equal(byName.get("empty")!.trials, 0);
  assert.equal(byName.get("empty")!.accuracy, null);
  assert.match(byName.get("empty")!.note!, /no trials/);
  assert.equal(byName.get("flaky")!.infraExcluded, 1);
  assert.match(byName.get("flaky")!.note!, /no scored trials \(1 infra-excluded\)/);
  assert.match(byName.get("good")!.note!, /every scored trial passed/);
  assert.equal(byName.get("base")!.note, undefined);
  const good = r.comparisons.find((c) => c.treatment === "good")!;
  assert.equal(good.commonTasks, 2);
  assert.deepEqual(
    good.excludedTasks.map((e) => e.taskId),
    ["only-base", "only-good"],
  );
  assert.equal(good.fisher!.n, 8, "Fisher on the common tasks only");
  assert.equal(good.mcnemar, null);
  assert.match(good.mcnemarSkipped!, /more than one replica/);
  assert.equal(good.difference, 1);
  assert.equal(good.cmh!.commonOddsRatio, null);
  assert.equal(good.cmh!.commonOddsRatioInfinite, true);
  const empty = r.comparisons.find((c) => c.treatment === "empty")!;
  assert.equal(empty.commonTasks, 0);
  assert.equal(empty.fisher, null);
  assert.match(empty.note!, /nothing to compare/);
  assert.ok(r.notes.some((n) => n.includes("excluded from the paired tests")));
  const html = renderReportHtml(r);
  assert.match(html, /only-base \(no scored trial in good\)/);
  assert.match(html, /<svg/);
});

test("a single task and a single variant are reported without comparisons or SE", () => {
  const r = buildReport([rec("only", "t", 0, 1), rec("only", "t", 1, 0)]);
  assert.equal(r.comparisons.length, 0);
  assert.equal(r.summaries[0]!.accuracy, 0.5);
  assert.equal(r.summaries[0]!.se, null);
  assert.ok(r.summaries[0]!.seLeaderboard !== null);
  assert.ok(r.notes.some((n) => n.includes("single task")));
  assert.throws(() => buildReport([]), StatsInputError);
  assert.throws(
    () => buildReport([rec("a", "t", 0, 1), rec("a", "t", 0, 0)]),
    /duplicate trial record: variant "a", task "t", replica 0/,
  );
  assert.throws(
    () => buildReport([rec("a", "t", 0, 1)], { baseline: "nope" }),
    /baseline "nope" is not a variant/,
  );
});

test("accuracy is the mean of task means; infra outcomes are excluded, null rewards of scored outcomes count 0", () => {
  const r = buildReport([
    rec("v", "a", 0, 1),
    rec("v", "a", 1, 1),
    rec("v", "a", 2, null, "llm_error"),
    rec("v", "b", 0, 1),
    rec("v", "b", 1, null, "reward_missing"),
    rec("v", "b", 2, 0),
  ]);
  const s = r.summaries[0]!;
  assert.equal(s.trials, 5);
  assert.equal(s.infraExcluded, 1);
  assert.ok(Math.abs(s.accuracy! - (1 + 1 / 3) / 2) < 1e-12);
  assert.equal(s.passRate, 3 / 5);
  assert.deepEqual(
    s.passAtK.map((p) => p.k),
    [1, 2],
  );
  assert.ok(Math.abs(s.passAtK[1]!.value - (1 + (1 - 1 / 3)) / 2) < 1e-12);
});

test("paired bootstrap is reproducible with a seed and changes with another", () => {
  const tasks = Array.from({ length: 20 }, (_, i) => ({
    taskId: `t${i}`,
    first: [i % 2, (i + 1) % 3 === 0 ? 1 : 0, 0],
    second: [1, i % 3 === 0 ? 0 : 1, i % 2],
  }));
  const a = pairedBootstrap(tasks, { seed: 42, resamples: 500 });
  const b = pairedBootstrap(tasks, { seed: 42, resamples: 500 });
  const c = pairedBootstrap(tasks, { seed: 43, resamples: 500 });
  assert.deepEqual(a.ci, b.ci);
  assert.notDeepEqual(a.ci, c.ci);
  assert.ok(a.ci.low <= a.difference && a.difference <= a.ci.high);
});

test("synthetic sweep: Holm across comparisons, sweeps with AUC, CSV rows per task × variant", () => {
  const s = syntheticSweep(3, 20, 3);
  const r = buildReport(s.records, {
    variants: s.variants,
    layerAuc: s.layerAuc,
    bootstrapResamples: 200,
  });
  assert.equal(r.comparisons.length, 6);
  for (const c of r.comparisons) {
    assert.ok(c.fisher!.pHolm! >= c.fisher!.pValue);
    assert.ok(c.cmh!.pHolm! >= c.cmh!.pValue);
  }
  const layer = r.sweeps.find((x) => x.parameter === "layer")!;
  assert.equal(layer.series[0]!.points.length, 6);
  assert.ok(layer.layerAuc!.length > 0);
  const csv = masterSummaryCsv(r).trimEnd().split("\n");
  assert.equal(csv.length, 1 + 20 * 7);
  assert.match(csv[0]!, /^task_id,variant,trials/);
  const again = buildReport(s.records, {
    variants: s.variants,
    layerAuc: s.layerAuc,
    bootstrapResamples: 200,
  });
  assert.deepEqual(again.comparisons[2]!.bootstrap, r.comparisons[2]!.bootstrap);
});

test("failure outliers flag a task with many parse errors", () => {
  const { records } = generateSyntheticRecords({
    variants: [{ name: "v", skill: 0 }],
    tasks: 30,
    replicas: 2,
    seed: 1,
    parseErrorRate: 0,
  });
  const bumped = records.map((x) => (x.taskId === "task-07" ? { ...x, parseErrors: 9 } : x));
  const r = buildReport(bumped);
  const o = r.failures.outliers.find((x) => x.metric === "parseErrorsPerTrial");
  assert.equal(o?.taskId, "task-07");
  assert.ok(o!.z > 2);
});

test("JSONL parsing names the line of a bad record", () => {
  const ok = parseTrialJsonl(`${JSON.stringify(rec("v", "t", 0, 1))}\n\n`, "x.jsonl");
  assert.equal(ok.length, 1);
  assert.throws(
    () => parseTrialJsonl(`${JSON.stringify({ ...rec("v", "t", 0, 1), reward: 2 })}\n`, "x.jsonl"),
    /x\.jsonl:1: "reward" must be null or in \[0, 1\], got 2/,
  );
  assert.throws(() => parseTrialJsonl("{", "y.jsonl"), /y\.jsonl:1: not valid JSON/);
});
