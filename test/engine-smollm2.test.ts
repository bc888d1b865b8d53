import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { convertGgufToHf } from "@abl/checkpoint";
import {
  createOpenAIServer,
  type Engine,
  loadModel,
  loadTokenizer,
  type OpenAIServer,
} from "@abl/engine";

/** SmolLM2-135M-Instruct Q4_1 GGUF: ABL_SMOLLM2_GGUF, or what `.ci/run` caches in ~/.cache/abl/smollm2. */
function ggufPath(): string {
  const env = process.env.ABL_SMOLLM2_GGUF;
  if (env) return env;
  const dir = "/root/.cache/abl/smollm2";
  const found = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".gguf")) : [];
  if (found.length === 0)
    throw new Error(
      `no SmolLM2 GGUF: set ABL_SMOLLM2_GGUF or put it in ${dir} (.ci/run fetches it)`,
    );
  return join(dir, found[0] as string);
}

describe("SmolLM2-135M-Instruct from GGUF through the server", () => {
  let dir: string;
  let engine: Engine;
  let server: OpenAIServer;
  let base: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "abl-smollm2-"));
    // The converter publishes a new folder atomically, so give it a fresh name inside ours.
    const model = join(dir, "model");
    await convertGgufToHf(ggufPath(), model, { dtype: "f32" });
    engine = await loadModel(model, { maxPositions: 2048 });
    const tokenizer = await loadTokenizer(model);
    server = createOpenAIServer({ models: [{ id: "smollm2", engine, tokenizer }] });
    base = `http://127.0.0.1:${await server.listen(0)}`;
  });
  after(async () => {
    await server?.close();
    await engine?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const ask = async (content: string) => {
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "smollm2",
        messages: [{ role: "user", content }],
        max_tokens: 40,
        temperature: 0,
      }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      choices: { message: { content: string }; finish_reason: string }[];
    };
    return body.choices[0] as { message: { content: string }; finish_reason: string };
  };

  it("answers simple factual questions coherently", async () => {
    const [france, japan] = await Promise.all([
      ask("What is the capital of France?"),
      ask("What is the capital of Japan? Answer in one word."),
    ]);
    assert.match(france.message.content, /Paris/);
    assert.equal(france.finish_reason, "stop");
    assert.match(japan.message.content, /Tokyo/);
  });
});
