import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { computeDirections, directionRow } from "./direction-math.ts";
import { DirectionsError } from "./errors.ts";
import { auc, formatRankingCsv, layerMetrics } from "./layer-metrics.ts";
import { createResiduals } from "./residuals.ts";

interface Fixture {
  shape: [number, number, number];
  fit: number[];
  select: number[];
  resamples: number;
  seed: number;
  refuse: number[];
  comply: number[];
  mean_diff: number[];
  projected: number[];
  pca: number[];
  metrics: {
    layer: number;
    auc: number;
    auc_low: number;
    auc_high: number;
    cohens_d: number;
    cos_prev: number | null;
  }[];
}

// Written by scripts/make_fixtures.py (numpy, scipy, scikit-learn).
const fx = JSON.parse(
  readFileSync(new URL("../fixtures/directions-reference.json", import.meta.url), "utf8"),
) as Fixture;
const refuse = createResiduals(Float32Array.from(fx.refuse), fx.shape);
const comply = createResiduals(Float32Array.from(fx.comply), fx.shape);

function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what} length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    assert.ok(Math.abs(a - e) <= tol, `${what}[${i}]: ${a} vs reference ${e}`);
  }
}

describe("directions against the numpy reference", () => {
  for (const method of ["mean-diff", "projected", "pca"] as const) {
    it(`${method} matches to f32 precision`, () => {
      const d = computeDirections(refuse, comply, {
        method,
        refuseIndices: fx.fit,
        complyIndices: fx.fit,
      });
      const key = method === "mean-diff" ? "mean_diff" : method;
      assertClose(d.data, fx[key], 1e-6, method);
    });
  }

  it("layer metrics (AUC, bootstrap CI, Cohen's d, neighbour cosine) match", () => {
    const d = computeDirections(refuse, comply, { refuseIndices: fx.fit, complyIndices: fx.fit });
    const rows = layerMetrics(refuse, comply, d, {
      refuseIndices: fx.select,
      complyIndices: fx.select,
      resamples: fx.resamples,
      seed: fx.seed,
    });
    assert.equal(rows.length, fx.metrics.length);
    for (const [i, m] of fx.metrics.entries()) {
      const r = rows[i];
      assert.ok(r);
      assert.ok(Math.abs(r.auc - m.auc) < 1e-12, `layer ${i} auc ${r.auc} vs ${m.auc}`);
      assert.ok(
        Math.abs(r.aucLow - m.auc_low) < 1e-9,
        `layer ${i} auc_low ${r.aucLow} vs ${m.auc_low}`,
      );
      assert.ok(
        Math.abs(r.aucHigh - m.auc_high) < 1e-9,
        `layer ${i} auc_high ${r.aucHigh} vs ${m.auc_high}`,
      );
      assert.ok(
        Math.abs(r.cohensD - m.cohens_d) < 1e-9,
        `layer ${i} d ${r.cohensD} vs ${m.cohens_d}`,
      );
      if (m.cos_prev === null) assert.ok(Number.isNaN(r.cosPrev));
      else assert.ok(Math.abs(r.cosPrev - m.cos_prev) < 1e-9);
    }
    const csv = formatRankingCsv(rows).trimEnd().split("\n");
    assert.equal(csv[0], "layer,auc,auc_low,auc_high,cohens_d,cos_prev,cos_next,cos_reference");
    assert.equal(csv.length, fx.shape[1] + 1);
    assert.match(csv[1] ?? "", /^0,[^,]+,[^,]+,[^,]+,[^,]+,,[^,]+,$/);
  });

  it("cosine with a reference is 1 against itself", () => {
    const d = computeDirections(refuse, comply);
    const rows = layerMetrics(refuse, comply, d, {
      refuseIndices: [0, 1, 2],
      complyIndices: [3, 4, 5],
      reference: d,
      resamples: 10,
    });
    for (const r of rows) assert.ok(Math.abs(r.cosReference - 1) < 1e-6);
    assert.ok(Math.abs(Math.hypot(...directionRow(d, 2)) - 1) < 1e-6);
  });
});

describe("direction math edge cases", () => {
  it("AUC counts ties half", () => {
    assert.equal(auc([1, 2], [1, 0]), 0.875);
    assert.equal(auc([0], [1]), 0);
  });

  it("identical buckets have no direction", () => {
    assert.throws(
      () => computeDirections(refuse, refuse),
      (e: Error) =>
        e instanceof DirectionsError && /do not differ at any of the 4 layers/.test(e.message),
    );
  });

  it("an empty fit split is an error naming the bucket", () => {
    assert.throws(
      () => computeDirections(refuse, comply, { refuseIndices: [] }),
      /refuse bucket has no prompts/,
    );
    assert.throws(
      () => computeDirections(refuse, comply, { complyIndices: [99] }),
      /comply prompt index 99 is outside 0..11/,
    );
  });

  it("mismatched shapes are rejected", () => {
    const other = createResiduals(new Float32Array(2 * 4 * 8), [2, 4, 8]);
    assert.throws(
      () => computeDirections(refuse, other),
      /refuse is \[\*, 4, 16\], comply is \[\*, 4, 8\]/,
    );
    assert.throws(() => createResiduals(new Float32Array(5), [2, 2, 2]), /needs 8 values, got 5/);
  });
});
