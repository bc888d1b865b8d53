import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readSafetensors, writeSafetensors } from "@abl/tensor";
import { drain, type Engine, loadModel } from "./engine.ts";
import { createRng } from "./sampling.ts";

const BASE = join(import.meta.dirname, "..", "fixtures", "golden", "llama3");
const D = 64;
const LAYERS = 2;
const PROMPTS = [
  [5, 17, 99, 3, 41, 200, 7, 8, 150],
  [12, 250, 31, 64],
];

function unitVector(seed: number): Float32Array {
  const rng = createRng(seed);
  const v = Float32Array.from({ length: D }, () => rng() - 0.5);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

/** W [out=D, in] ← W − r (rᵀ W): the output of the projection loses its r component. */
function orthogonalizeOutputs(w: Float32Array, cols: number, r: Float32Array): Float32Array {
  const out = w.slice();
  for (let c = 0; c < cols; c++) {
    let dot = 0;
    for (let o = 0; o < D; o++) dot += (r[o] as number) * (w[o * cols + c] as number);
    for (let o = 0; o < D; o++)
      out[o * cols + c] = (out[o * cols + c] as number) - (r[o] as number) * dot;
  }
  return out;
}

/** E [V, D] ← E − (E r) rᵀ: every embedding row loses its r component. */
function orthogonalizeRows(e: Float32Array, r: Float32Array): Float32Array {
  const out = e.slice();
  for (let row = 0; row < e.length / D; row++) {
    let dot = 0;
    for (let j = 0; j < D; j++) dot += (e[row * D + j] as number) * (r[j] as number);
    for (let j = 0; j < D; j++)
      out[row * D + j] = (out[row * D + j] as number) - dot * (r[j] as number);
  }
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

describe("interventions", () => {
  const r = unitVector(42);
  let tmp: string;
  let base: Engine;
  let ablated: Engine;
  let patched: Engine;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "abl-engine-ablate-"));
    const f = await readSafetensors(join(BASE, "model.safetensors"));
    const tensors: Record<string, { shape: readonly number[]; data: Float32Array }> = {};
    try {
      for (const name of f.names) {
        const shape = f.info(name).shape;
        let data = await f.tensor(name);
        if (name === "model.embed_tokens.weight") {
          // The fixture ties lm_head to the embedding; like @abl/patch, untie it so the output
          // head keeps the original rows while the input embedding is orthogonalized.
          tensors["lm_head.weight"] = { shape, data };
          data = orthogonalizeRows(data, r);
        }
        if (name.endsWith("o_proj.weight") || name.endsWith("down_proj.weight"))
          data = orthogonalizeOutputs(data, shape[1] as number, r);
        tensors[name] = { shape, data };
      }
    } finally {
      await f.close();
    }
    await writeSafetensors(join(tmp, "model.safetensors"), tensors);
    const config = JSON.parse(await readFile(join(BASE, "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    assert.equal(config.tie_word_embeddings, true);
    await writeFile(
      join(tmp, "config.json"),
      JSON.stringify({ ...config, tie_word_embeddings: false }),
    );
    base = await loadModel(BASE, { maxPositions: 64 });
    ablated = await loadModel(BASE, {
      maxPositions: 64,
      intervention: { type: "ablate", direction: r },
    });
    patched = await loadModel(tmp, { maxPositions: 64 });
  });
  after(async () => {
    await Promise.all([base?.dispose(), ablated?.dispose(), patched?.dispose()]);
    await rm(tmp, { recursive: true, force: true });
  });

  it("ablation at inference matches the weight-orthogonalized model within 1e-3", async () => {
    const a = await ablated.forward(PROMPTS);
    const p = await patched.forward(PROMPTS);
    const b = await base.forward(PROMPTS);
    a.forEach((x, i) => {
      const y = p[i] as (typeof p)[number];
      assert.ok(
        maxAbsDiff(x.logits, y.logits) < 1e-3,
        `logits ${i}: ${maxAbsDiff(x.logits, y.logits)}`,
      );
      assert.ok(
        maxAbsDiff(x.hidden, y.hidden) < 1e-3,
        `hidden ${i}: ${maxAbsDiff(x.hidden, y.hidden)}`,
      );
      // The intervention must change something, or this test proves nothing.
      assert.ok(maxAbsDiff(x.logits, (b[i] as (typeof b)[number]).logits) > 1e-2);
    });
    // And the residual really has no r component left.
    const h = (a[0] as (typeof a)[number]).hidden;
    for (let v = 0; v < h.length / D; v++) {
      let dot = 0;
      for (let j = 0; j < D; j++) dot += (h[v * D + j] as number) * (r[j] as number);
      assert.ok(Math.abs(dot) < 1e-4, `residual vector ${v} keeps r component ${dot}`);
    }
  });

  it("steering adds alpha * d at one layer and nowhere before it", async () => {
    const layer = 1;
    const alpha = 3;
    const steered = await loadModel(BASE, {
      maxPositions: 64,
      intervention: { type: "steer", layer, direction: r, alpha },
    });
    try {
      const s = await steered.forward([PROMPTS[0] as number[]]);
      const b = await base.forward([PROMPTS[0] as number[]]);
      const n = (PROMPTS[0] as number[]).length;
      const hs = (s[0] as (typeof s)[number]).hidden;
      const hb = (b[0] as (typeof b)[number]).hidden;
      // layer 0 untouched; layer 1 = base + alpha r exactly; later layers differ.
      assert.ok(maxAbsDiff(hs.subarray(0, n * D), hb.subarray(0, n * D)) === 0);
      for (let t = 0; t < n; t++)
        for (let j = 0; j < D; j++) {
          const k = layer * n * D + t * D + j;
          assert.ok(
            Math.abs((hs[k] as number) - (hb[k] as number) - alpha * (r[j] as number)) < 1e-5,
          );
        }
      assert.ok(maxAbsDiff(hs.subarray(LAYERS * n * D), hb.subarray(LAYERS * n * D)) > 1e-3);
    } finally {
      await steered.dispose();
    }
  });

  it("capture returns every layer at the last token or from a start position, equal to forward", async () => {
    const full = await base.forward(PROMPTS);
    const events: number[] = [];
    const last = await drain(
      base.capture({ prompts: PROMPTS, positions: "last", batchSize: 1 }),
      (e) => events.push(e.done),
    );
    assert.deepEqual(events, [1, 2]);
    assert.equal(last.layers, LAYERS + 1);
    last.items.forEach((item, i) => {
      const n = (PROMPTS[i] as number[]).length;
      assert.deepEqual(item.positions, [n - 1]);
      const h = (full[i] as (typeof full)[number]).hidden;
      for (let l = 0; l <= LAYERS; l++) {
        const want = h.subarray((l * n + n - 1) * D, (l * n + n) * D);
        assert.ok(maxAbsDiff(item.residual.subarray(l * D, (l + 1) * D), want) < 1e-5);
      }
    });
    const from = await drain(base.capture({ prompts: PROMPTS, positions: { from: [6, 1] } }));
    assert.deepEqual(from.items[0]?.positions, [6, 7, 8]);
    assert.equal(from.items[1]?.residual.length, (LAYERS + 1) * 3 * D);
    await assert.rejects(
      drain(base.capture({ prompts: PROMPTS, positions: { from: [9, 0] } })),
      /outside prompt 0/,
    );
  });

  it("capture stops when aborted", async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(
      drain(base.capture({ prompts: PROMPTS, positions: "last", signal: ac.signal })),
      {
        name: "AbortError",
      },
    );
  });
});
