import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LayerMetrics } from "./layer-metrics.ts";
import { candidateLayers, selectLayer } from "./layer-selection.ts";

function rows(aucs: number[]): LayerMetrics[] {
  return aucs.map((a, layer) => ({
    layer,
    auc: a,
    aucLow: a - 0.05,
    aucHigh: a + 0.05,
    cohensD: 1,
    cosPrev: Number.NaN,
    cosNext: Number.NaN,
    cosReference: Number.NaN,
  }));
}

describe("layer selection", () => {
  it("candidates skip the embedding and the last 20 % of blocks", () => {
    assert.deepEqual(candidateLayers(11), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(
      candidateLayers(31),
      Array.from({ length: 24 }, (_, i) => i + 1),
    );
  });

  it("best-auc ignores a better layer in the excluded tail", async () => {
    const r = rows([0.99, 0.6, 0.8, 0.7, 0.5, 0.99]);
    const s = await selectLayer({ type: "best-auc" }, r);
    assert.equal(s.layer, 2);
  });

  it("saturated AUC ties are broken by Cohen's d", async () => {
    const r = rows([0.5, 1, 1, 1, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]).map((x) => ({
      ...x,
      cohensD: x.layer === 3 ? 9 : 2,
    }));
    assert.equal((await selectLayer({ type: "best-auc" }, r)).layer, 3);
  });

  it("explicit checks the range", async () => {
    await assert.rejects(
      selectLayer({ type: "explicit", layer: 6 }, rows([0.5, 0.5, 0.5])),
      /layer 6 is out of range: residuals have layers 0..2/,
    );
    assert.equal(
      (await selectLayer({ type: "explicit", layer: 2 }, rows([0.5, 0.5, 0.5]))).layer,
      2,
    );
  });

  it("causal picks the lowest refusal rate under the KL ceiling", async () => {
    const r = rows([0.5, 0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
    const table: Record<number, { refusalRate: number; kl: number }> = {
      1: { refusalRate: 0.1, kl: 0.5 },
      2: { refusalRate: 0.2, kl: 0.05 },
      3: { refusalRate: 0.3, kl: 0.01 },
    };
    const probed: number[] = [];
    const s = await selectLayer({ type: "causal", candidates: 3, maxKl: 0.1 }, r, async (layer) => {
      probed.push(layer);
      return table[layer] ?? { refusalRate: 1, kl: 0 };
    });
    assert.deepEqual(probed, [1, 2, 3]);
    assert.equal(s.layer, 2);
    assert.equal(s.probes.length, 3);
    await assert.rejects(
      selectLayer({ type: "causal", candidates: 1, maxKl: 0.1 }, r, async () => ({
        refusalRate: 0,
        kl: 1,
      })),
      /all 1 candidates exceed KL 0.1/,
    );
    await assert.rejects(selectLayer({ type: "causal" }, r), /needs an ablation probe/);
  });
});
