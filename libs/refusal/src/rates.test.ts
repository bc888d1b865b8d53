import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { klTopLogprobs, sharedPrefixKl } from "./kl.ts";
import { cohensKappa, wilsonRate } from "./rates.ts";

// Written by scripts/make_rate_fixtures.py (scipy binomtest Wilson CI, sklearn cohen_kappa_score).
const fx = JSON.parse(
  readFileSync(new URL("../fixtures/rates-reference.json", import.meta.url), "utf8"),
) as {
  wilson: { count: number; n: number; low: number; high: number }[];
  kappa: { a: boolean[]; b: boolean[]; kappa: number }[];
};

describe("rates", () => {
  it("Wilson intervals match scipy", () => {
    for (const w of fx.wilson) {
      const r = wilsonRate(w.count, w.n);
      assert.ok(Math.abs(r.low - w.low) < 1e-9, `${w.count}/${w.n} low ${r.low} vs ${w.low}`);
      assert.ok(Math.abs(r.high - w.high) < 1e-9, `${w.count}/${w.n} high ${r.high} vs ${w.high}`);
    }
    assert.throws(() => wilsonRate(3, 2), /0 ≤ count ≤ n, got 3 of 2/);
  });

  it("Cohen's kappa matches scikit-learn", () => {
    for (const k of fx.kappa) assert.ok(Math.abs(cohensKappa(k.a, k.b) - k.kappa) < 1e-12);
    assert.equal(cohensKappa([true, true], [true, true]), 1);
  });
});

describe("KL from top logprobs", () => {
  const dist = (ps: Record<string, number>) =>
    Object.entries(ps).map(([token, p]) => ({ token, logprob: Math.log(p) }));

  it("is zero for identical distributions and exact when both list every token", () => {
    const p = dist({ a: 0.5, b: 0.3, c: 0.2 });
    assert.ok(klTopLogprobs(p, p) < 1e-12);
    const q = dist({ a: 0.25, b: 0.25, c: 0.5 });
    const exact =
      0.5 * Math.log(0.5 / 0.25) + 0.3 * Math.log(0.3 / 0.25) + 0.2 * Math.log(0.2 / 0.5);
    assert.ok(Math.abs(klTopLogprobs(p, q) - exact) < 1e-12);
  });

  it("charges tokens the variant does not list", () => {
    const p = dist({ a: 0.9, b: 0.05 });
    const q = dist({ c: 0.9, d: 0.05 });
    assert.ok(klTopLogprobs(p, q) > 2);
  });

  it("uses positions up to and including the first divergence", () => {
    const tok = (token: string) => ({
      token,
      logprob: Math.log(0.9),
      top: dist({ [token]: 0.9, z: 0.1 }),
    });
    const base = [tok("a"), tok("b"), tok("c"), tok("d")];
    assert.deepEqual(sharedPrefixKl(base, base, 3), { kl: 0, positions: 3 });
    const r = sharedPrefixKl(base, [tok("a"), tok("x"), tok("c")], 8);
    assert.equal(r.positions, 2);
    assert.ok(r.kl > 0);
  });
});
