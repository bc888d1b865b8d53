// Checks every statistic against scipy / statsmodels values from fixtures/make_reference.py.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { cochranMantelHaenszel } from "./cmh.ts";
import { fisherExact } from "./fisher.ts";
import { holmAdjust } from "./holm.ts";
import { mcnemarExact } from "./mcnemar.ts";
import { permutationTest, signTest } from "./paired.ts";
import { replicasForPower } from "./power.ts";
import { passAtK, wilsonInterval } from "./proportions.ts";
import { chiSquare1Sf, normalQuantile } from "./special.ts";
import type { Alternative } from "./test-result.ts";

const ref = JSON.parse(
  readFileSync(new URL("../fixtures/reference.json", import.meta.url), "utf8"),
);

function close(actual: number | null, expected: number | null, what: string, rel = 1e-9): void {
  if (expected === null) {
    assert.equal(actual, null, what);
    return;
  }
  assert.ok(actual !== null, `${what}: got null, want ${expected}`);
  const tol = Math.max(rel * Math.abs(expected), 1e-14);
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, want ${expected}`);
}

test("Fisher's exact test matches scipy, including 7/89 vs 3/89", () => {
  for (const c of ref.fisher) {
    const [a, b, cc, d] = c.table;
    const r = fisherExact(a, b, cc, d, c.alternative as Alternative);
    close(r.pValue, c.p, `fisher ${c.table} ${c.alternative}`);
    close(r.statistic, c.oddsRatio, `fisher OR ${c.table}`);
    assert.equal(r.n, a + b + cc + d);
    assert.equal(r.alternative, c.alternative);
  }
  const two = fisherExact(7, 82, 3, 86);
  assert.equal(two.pValue.toFixed(2), "0.33");
  assert.equal(fisherExact(7, 82, 3, 86, "greater").pValue.toFixed(3), "0.165");
});

test("McNemar's exact test matches statsmodels (two-sided) and scipy binomtest (one-sided)", () => {
  for (const c of ref.mcnemar) {
    const two = mcnemarExact(c.onlyFirst, c.onlySecond);
    close(two.pValue, c.p, `mcnemar ${c.onlyFirst}/${c.onlySecond}`);
    close(two.statistic, c.statistic, "mcnemar statistic");
    close(mcnemarExact(c.onlyFirst, c.onlySecond, "greater").pValue, c.pGreater, "mcnemar greater");
    close(mcnemarExact(c.onlyFirst, c.onlySecond, "less").pValue, c.pLess, "mcnemar less");
  }
});

test("CMH statistic, p and MH common odds ratio match statsmodels", () => {
  for (const c of ref.cmh) {
    const strata = c.strata.map(([a, b, cc, d]: number[]) => ({ a, b, c: cc, d }));
    const r = cochranMantelHaenszel(strata, { correction: c.correction });
    close(r.statistic, c.statistic, `cmh statistic corr=${c.correction}`);
    close(r.pValue, c.p, `cmh p corr=${c.correction}`, 1e-8);
    close(r.commonOddsRatio, c.oddsRatio, "MH odds ratio");
  }
});

test("Wilson interval matches statsmodels", () => {
  for (const c of ref.wilson) {
    const r = wilsonInterval(c.successes, c.n)!;
    close(r.low, c.low, `wilson low ${c.successes}/${c.n}`, 1e-9);
    close(r.high, c.high, `wilson high ${c.successes}/${c.n}`, 1e-9);
  }
  assert.equal(wilsonInterval(0, 0), null);
});

test("unbiased pass@k matches the binomial-coefficient formula", () => {
  for (const c of ref.passAtK)
    close(passAtK(c.n, c.c, c.k), c.value, `pass@${c.k} n=${c.n} c=${c.c}`);
});

test("Holm adjustment matches statsmodels", () => {
  const got = holmAdjust(ref.holm.p);
  for (const [i, p] of (ref.holm.adjusted as number[]).entries()) close(got[i]!, p, `holm ${i}`);
});

test("sign test and exact permutation test match scipy", () => {
  for (const alt of ["two-sided", "greater", "less"] as const) {
    close(signTest(ref.sign.diffs, alt).pValue, ref.sign.p[alt], `sign ${alt}`);
    const perm = permutationTest(ref.permutation.diffs, alt);
    close(perm.pValue, ref.permutation.p[alt], `permutation ${alt}`);
    assert.match(perm.test, /^exact/);
  }
  for (const c of ref.permutationMore) {
    for (const alt of ["two-sided", "greater", "less"] as const) {
      const r = permutationTest(c.diffs, alt);
      close(r.pValue, c.p[alt], `permutation n=${c.diffs.length} ${alt}`, 1e-8);
      assert.match(r.test, /^exact/);
    }
  }
});

test("normal quantile and chi-square(1) tail match scipy", () => {
  for (const c of ref.normal) close(normalQuantile(c.p), c.z, `ppf ${c.p}`, 1e-9);
  for (const c of ref.chi2) close(chiSquare1Sf(c.x), c.sf, `chi2 sf ${c.x}`, 1e-9);
});

test("power formula gives the reference replicas per task", () => {
  const tasks = ref.power.first.map((f: number[], i: number) => ({
    taskId: `t${i}`,
    first: f,
    second: ref.power.second[i],
  }));
  const r = replicasForPower(tasks, ref.power.difference);
  close(r.varianceSum, ref.power.varianceSum, "variance sum");
  assert.equal(r.replicasPerTask, ref.power.replicasPerTask);
  assert.equal(r.trialsPerVariant, ref.power.replicasPerTask * 5);
});
