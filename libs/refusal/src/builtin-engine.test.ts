import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { drain, loadModel, loadTokenizer } from "@abl/engine";
import {
  createBuiltinCapturer,
  createCausalProbe,
  createEngineEndpoint,
} from "./builtin-engine.ts";
import type { CapturedBatch, CaptureProgress } from "./capture-job.ts";
import { promptMessages } from "./contrast-set.ts";
import { computeDirections } from "./direction-math.ts";
import { ActivationsError } from "./errors.ts";
import { createMarkerJudge } from "./judges.ts";
import { presetContrastSet } from "./presets/index.ts";
import { createResiduals } from "./residuals.ts";

// Random 2-layer Llama from scripts/make_tiny_model.py: plumbing, not behaviour.
const MODEL = fileURLToPath(new URL("../fixtures/tiny-llama/", import.meta.url));

async function run<R>(g: AsyncGenerator<CaptureProgress, R>): Promise<R> {
  for (;;) {
    const r = await g.next();
    if (r.done) return r.value;
  }
}

describe("built-in engine adapters (tiny random Llama)", () => {
  it("captures [layers+1, hidden] at the last prompt token, equal to a full forward pass", async () => {
    const [engine, tokenizer] = await Promise.all([loadModel(MODEL), loadTokenizer(MODEL)]);
    try {
      const set = presetContrastSet("agent-shell");
      const prompts = set.comply.slice(0, 3);
      const c = createBuiltinCapturer({
        engine,
        tokenizer,
        modelDigest: "sha256:tiny",
        batchSize: 2,
      });
      assert.match(c.chatTemplate, /im_start/);
      const batch: CapturedBatch = await run(c.capture("comply", prompts));
      assert.equal(batch.layers, 3);
      assert.equal(batch.hidden, 32);
      const ids = tokenizer.applyChatTemplate(
        promptMessages(prompts[1] as (typeof prompts)[number]),
        { addGenerationPrompt: true },
      ).ids;
      const [full] = await engine.forward([ids]);
      assert.ok(full);
      const S = ids.length;
      for (let l = 0; l < 3; l++) {
        for (let j = 0; j < 32; j++) {
          const want = full.hidden[(l * S + S - 1) * 32 + j] as number;
          const got = batch.rows[1]?.[l * 32 + j] as number;
          assert.ok(Math.abs(want - got) < 1e-4, `layer ${l} [${j}]: ${got} vs ${want}`);
        }
      }
    } finally {
      await engine.dispose();
    }
  });

  it("rejects prompts beyond the context", async () => {
    const [engine, tokenizer] = await Promise.all([
      loadModel(MODEL, { maxPositions: 16 }),
      loadTokenizer(MODEL),
    ]);
    try {
      const c = createBuiltinCapturer({ engine, tokenizer, modelDigest: "d" });
      await assert.rejects(
        run(c.capture("refuse", presetContrastSet("agent-shell").refuse.slice(0, 1))),
        (e: Error) =>
          e instanceof ActivationsError &&
          /refuse prompt agent-shell#0 has \d+ tokens, beyond the model's 16-position context/.test(
            e.message,
          ),
      );
    } finally {
      await engine.dispose();
    }
  });

  it("serves chat completions with logprobs in process and probes an ablated layer", async () => {
    const [engine, tokenizer] = await Promise.all([loadModel(MODEL), loadTokenizer(MODEL)]);
    try {
      const ep = createEngineEndpoint(engine, tokenizer, "tiny");
      const r = await ep.complete({
        messages: [{ role: "user", content: "hello" }],
        maxTokens: 5,
        topLogprobs: 3,
      });
      assert.equal(r.tokens?.length, 5);
      assert.equal(r.tokens?.[0]?.top.length, 3);
      const same = await ep.complete({
        messages: [{ role: "user", content: "hello" }],
        maxTokens: 5,
      });
      assert.equal(same.text, r.text, "greedy is deterministic");

      // Random weights refuse nothing in particular: the probe must run the ablated engine and
      // report a rate in [0, 1] and a finite, non-negative KL.
      const rand = (seed: number) =>
        Float32Array.from({ length: 4 * 3 * 32 }, (_, i) => Math.sin(seed * 1000 + i));
      const d = computeDirections(
        createResiduals(rand(1), [4, 3, 32]),
        createResiduals(rand(2), [4, 3, 32]),
      );
      const set = presetContrastSet("agent-shell");
      const probe = createCausalProbe(d, {
        modelDir: MODEL,
        tokenizer,
        base: ep,
        refuse: set.refuse.slice(0, 2),
        comply: set.comply.slice(0, 2),
        judge: createMarkerJudge(),
        maxTokens: 100,
        klTokens: 3,
      });
      const res = await probe(1);
      assert.ok(res.refusalRate >= 0 && res.refusalRate <= 1);
      assert.ok(Number.isFinite(res.kl) && res.kl >= 0);
      await assert.rejects(drain(engine.generate({ prompts: [[1]], maxTokens: 0 })), /maxTokens/);
    } finally {
      await engine.dispose();
    }
  });
});
