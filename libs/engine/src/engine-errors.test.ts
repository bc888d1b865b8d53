import assert from "node:assert/strict";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { drain, type Engine, loadModel } from "./engine.ts";
import { ModelLoadError } from "./errors.ts";
import { parseModelConfig } from "./model-config.ts";
import { argmax, createRng, sampleToken, tokenLogprobs } from "./sampling.ts";

const BASE = join(import.meta.dirname, "..", "fixtures", "golden", "qwen3");

describe("model config and load errors", () => {
  let tmp: string;
  let config: Record<string, unknown>;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "abl-engine-errors-"));
    await copyFile(join(BASE, "model.safetensors"), join(tmp, "model.safetensors"));
    config = JSON.parse(await readFile(join(BASE, "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
  });
  after(async () => rm(tmp, { recursive: true, force: true }));

  it("names the supported architectures for an unsupported one", () => {
    assert.throws(
      () => parseModelConfig({ ...config, architectures: ["GPT2LMHeadModel"] }),
      (e: Error) => {
        assert.ok(e instanceof ModelLoadError);
        assert.match(e.message, /"GPT2LMHeadModel" is not supported/);
        assert.match(
          e.message,
          /LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM/,
        );
        return true;
      },
    );
  });

  it("rejects bad config values, naming the key", () => {
    assert.throws(
      () => parseModelConfig({ ...config, num_key_value_heads: 3 }),
      /not a multiple of num_key_value_heads 3/,
    );
    assert.throws(
      () => parseModelConfig({ ...config, hidden_size: "64" }),
      /"hidden_size" must be a number/,
    );
    assert.throws(
      () =>
        parseModelConfig({ ...config, rope_parameters: { rope_type: "longrope", rope_theta: 1 } }),
      /rope scaling type "longrope" is not supported/,
    );
  });

  it("reports weights that do not match config.json with both shapes", async () => {
    await writeFile(
      join(tmp, "config.json"),
      JSON.stringify({ ...config, intermediate_size: 128 }),
    );
    await assert.rejects(loadModel(tmp), (e: Error) => {
      assert.ok(e instanceof ModelLoadError);
      assert.match(
        e.message,
        /mlp\.gate_proj\.weight" has shape \[96, 64\], config\.json implies \[128, 64\]/,
      );
      return true;
    });
  });

  it("rejects prompts longer than the context and ids outside the vocabulary", async () => {
    await writeFile(join(tmp, "config.json"), JSON.stringify(config));
    const engine: Engine = await loadModel(tmp, { maxPositions: 16 });
    try {
      await assert.rejects(
        drain(engine.generate({ prompts: [Array.from({ length: 17 }, () => 5)], maxTokens: 2 })),
        /prompt 0 has 17 tokens, longer than the context of 16/,
      );
      await assert.rejects(
        engine.forward([[5, 999]]),
        /token id 999 outside the vocabulary 0\.\.255/,
      );
      await assert.rejects(
        drain(engine.generate({ prompts: [[5, 6]], maxTokens: 2, sampling: { temperature: -1 } })),
        /temperature must be >= 0/,
      );
      // Generation stops at the context length with finish reason "length".
      const [seq] = await drain(
        engine.generate({ prompts: [[5, 6, 7]], maxTokens: 100, ignoreEos: true }),
      );
      assert.equal(seq?.finishReason, "length");
      assert.ok((seq?.tokens.length ?? 0) + 3 <= 16);
    } finally {
      await engine.dispose();
    }
  });
});

describe("sampling", () => {
  const logits = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i * 1.7) * 3);

  it("is greedy at temperature 0 and with top_k 1", () => {
    const best = argmax(logits);
    assert.equal(sampleToken(logits, {}, createRng(1)), best);
    for (let s = 0; s < 20; s++)
      assert.equal(sampleToken(logits, { temperature: 1, topK: 1 }, createRng(s)), best);
  });

  it("is reproducible for a seed and keeps to top_k", () => {
    const draw = (seed: number) => {
      const rng = createRng(seed);
      return Array.from({ length: 30 }, () =>
        sampleToken(logits, { temperature: 1, topK: 5 }, rng),
      );
    };
    assert.deepEqual(draw(7), draw(7));
    assert.notDeepEqual(draw(7), draw(8));
    const top5 = [...logits.keys()]
      .sort((a, b) => (logits[b] as number) - (logits[a] as number))
      .slice(0, 5);
    for (const t of draw(9)) assert.ok(top5.includes(t));
  });

  it("top_p keeps the smallest nucleus", () => {
    const peaked = new Float32Array(10).fill(0);
    peaked[3] = 10; // p ≈ 0.9996
    for (let s = 0; s < 20; s++)
      assert.equal(sampleToken(peaked, { temperature: 1, topP: 0.5 }, createRng(s)), 3);
  });

  it("log-probabilities normalize and rank the alternatives", () => {
    const { logprob, top } = tokenLogprobs(logits, 4, 3);
    let total = 0;
    for (let i = 0; i < logits.length; i++) total += Math.exp(tokenLogprobs(logits, i, 0).logprob);
    assert.ok(Math.abs(total - 1) < 1e-9);
    assert.ok(logprob < 0);
    assert.equal(top.length, 3);
    assert.equal(top[0]?.token, argmax(logits));
    assert.ok((top[0]?.logprob as number) >= (top[1]?.logprob as number));
  });
});
