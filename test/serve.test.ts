import assert from "node:assert/strict";
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  createOpenAIServer,
  createRng,
  type Engine,
  loadModel,
  loadTokenizer,
  type OpenAIServer,
} from "@abl/engine";
import { writeSafetensors } from "@abl/tensor";

/** The tokenizer fixture of the engine's tokenizer tests (byte-level BPE, ChatML template). */
const TOKENIZER = join(
  import.meta.dirname,
  "..",
  "libs",
  "engine",
  "fixtures",
  "tokenizers",
  "tiny-qwen2",
);
const VOCAB = 420;
const D = 32;
const LAYERS = 2;
const INTER = 64;

/** A random tiny Qwen2 checkpoint with the fixture tokenizer, so the server runs end to end in seconds. */
async function makeTinyModel(dir: string): Promise<void> {
  const rng = createRng(11);
  const rand = (n: number, scale: number) =>
    Float32Array.from({ length: n }, () => (rng() * 2 - 1) * scale);
  const t: Record<string, { shape: number[]; data: Float32Array }> = {
    "model.embed_tokens.weight": { shape: [VOCAB, D], data: rand(VOCAB * D, 1) },
    "model.norm.weight": { shape: [D], data: Float32Array.from({ length: D }, () => 1) },
  };
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}`;
    const add = (name: string, shape: number[], scale: number) => {
      t[`${p}.${name}`] = {
        shape,
        data: rand(
          shape.reduce((a, b) => a * b, 1),
          scale,
        ),
      };
    };
    add("input_layernorm.weight", [D], 1);
    add("post_attention_layernorm.weight", [D], 1);
    for (const n of ["q", "k", "v"]) {
      const out = n === "q" ? D : D / 2;
      add(`self_attn.${n}_proj.weight`, [out, D], 0.3);
      add(`self_attn.${n}_proj.bias`, [out], 0.1);
    }
    add("self_attn.o_proj.weight", [D, D], 0.3);
    add("mlp.gate_proj.weight", [INTER, D], 0.3);
    add("mlp.up_proj.weight", [INTER, D], 0.3);
    add("mlp.down_proj.weight", [D, INTER], 0.3);
  }
  await writeSafetensors(join(dir, "model.safetensors"), t);
  await writeFile(
    join(dir, "config.json"),
    JSON.stringify({
      architectures: ["Qwen2ForCausalLM"],
      hidden_size: D,
      intermediate_size: INTER,
      num_hidden_layers: LAYERS,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      vocab_size: VOCAB,
      max_position_embeddings: 256,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      tie_word_embeddings: true,
      eos_token_id: 2,
    }),
  );
  for (const f of ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"])
    await copyFile(join(TOKENIZER, f), join(dir, f));
}

describe("OpenAI-compatible server", () => {
  let dir: string;
  let engine: Engine;
  let server: OpenAIServer;
  let small: OpenAIServer;
  let base: string;
  let smallBase: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "abl-serve-test-"));
    await makeTinyModel(dir);
    engine = await loadModel(dir);
    const tokenizer = await loadTokenizer(dir);
    server = createOpenAIServer({
      models: [{ id: "tiny", engine, tokenizer }],
      maxBatch: 8,
      maxQueue: 32,
    });
    base = `http://127.0.0.1:${await server.listen(0)}`;
    // A one-slot queue and batch of one, to see 429.
    small = createOpenAIServer({
      models: [{ id: "tiny", engine, tokenizer }],
      maxBatch: 1,
      maxQueue: 1,
    });
    smallBase = `http://127.0.0.1:${await small.listen(0)}`;
  });
  after(async () => {
    await server?.close();
    await small?.close();
    await engine?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  const post = async (path: string, body: unknown, at = base) => {
    const res = await fetch(`${at}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    // biome-ignore lint/suspicious/noExplicitAny: the tests walk arbitrary OpenAI JSON responses
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const chat = (extra: Record<string, unknown> = {}) => ({
    model: "tiny",
    messages: [{ role: "user", content: "Hello there, how are you?" }],
    max_tokens: 12,
    temperature: 0,
    ...extra,
  });

  it("serves /health, /v1/models and /metrics", async () => {
    assert.deepEqual(await (await fetch(`${base}/health`)).json(), { status: "ok" });
    const models = (await (await fetch(`${base}/v1/models`)).json()) as { data: { id: string }[] };
    assert.deepEqual(
      models.data.map((m) => m.id),
      ["tiny"],
    );
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(
      metrics,
      /abl_engine_http_requests_total\{endpoint="\/v1\/models",status="200"\} 1/,
    );
  });

  it("answers chat completions deterministically when greedy, with usage", async () => {
    const a = await post("/v1/chat/completions", chat());
    const b = await post("/v1/chat/completions", chat());
    assert.equal(a.status, 200);
    assert.equal(a.body.object, "chat.completion");
    assert.equal(a.body.choices[0].message.role, "assistant");
    assert.equal(typeof a.body.choices[0].message.content, "string");
    assert.ok(["stop", "length"].includes(a.body.choices[0].finish_reason));
    assert.ok(a.body.usage.completion_tokens >= 1 && a.body.usage.completion_tokens <= 12);
    assert.equal(
      a.body.usage.total_tokens,
      a.body.usage.prompt_tokens + a.body.usage.completion_tokens,
    );
    assert.deepEqual(a.body.choices, b.body.choices);
  });

  it("streams the same text as SSE chunks, then usage and [DONE]", async () => {
    const whole = await post("/v1/chat/completions", chat());
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(chat({ stream: true, stream_options: { include_usage: true } })),
    });
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const events = (await res.text()).split("\n\n").filter((e) => e.startsWith("data: "));
    assert.equal(events.at(-1), "data: [DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
    assert.equal(chunks[0].choices[0].delta.role, "assistant");
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
    assert.equal(text, whole.body.choices[0].message.content);
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    assert.equal(finish.choices[0].finish_reason, whole.body.choices[0].finish_reason);
    assert.deepEqual(chunks.at(-1).usage, whole.body.usage);
  });

  it("samples reproducibly with a seed, and differently with another", async () => {
    const req = (seed: number) => chat({ temperature: 1.5, top_p: 0.95, seed, max_tokens: 16 });
    const a = await post("/v1/chat/completions", req(1));
    const b = await post("/v1/chat/completions", req(1));
    assert.equal(a.body.choices[0].message.content, b.body.choices[0].message.content);
    const others = await Promise.all([2, 3, 4, 5].map((s) => post("/v1/chat/completions", req(s))));
    assert.ok(
      others.some((o) => o.body.choices[0].message.content !== a.body.choices[0].message.content),
    );
  });

  it("returns logprobs with top alternatives", async () => {
    const r = await post("/v1/chat/completions", chat({ logprobs: true, top_logprobs: 3 }));
    const content = r.body.choices[0].logprobs.content as {
      logprob: number;
      top_logprobs: { logprob: number }[];
    }[];
    assert.equal(content.length, r.body.usage.completion_tokens);
    for (const c of content) {
      assert.equal(c.top_logprobs.length, 3);
      assert.ok(c.logprob <= 0);
      // greedy: the chosen token is the most likely one
      assert.ok(Math.abs(c.logprob - (c.top_logprobs[0] as { logprob: number }).logprob) < 1e-6);
    }
  });

  it("stops at a stop string and cuts it off", async () => {
    const full = (await post("/v1/chat/completions", chat({ max_tokens: 16, stop: null }))).body
      .choices[0].message.content as string;
    assert.ok(full.length >= 4, `greedy output too short to test stops: ${JSON.stringify(full)}`);
    const stop = full.slice(2, 4);
    const r = await post("/v1/chat/completions", chat({ max_tokens: 16, stop: [stop] }));
    assert.equal(r.body.choices[0].message.content, full.slice(0, full.indexOf(stop)));
    assert.equal(r.body.choices[0].finish_reason, "stop");
  });

  it("serves /v1/completions with logprobs", async () => {
    const r = await post("/v1/completions", {
      model: "tiny",
      prompt: "Once upon a time",
      max_tokens: 5,
      temperature: 0,
      logprobs: 2,
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.object, "text_completion");
    assert.equal(typeof r.body.choices[0].text, "string");
    assert.equal(r.body.choices[0].logprobs.tokens.length, r.body.usage.completion_tokens);
    assert.equal(Object.keys(r.body.choices[0].logprobs.top_logprobs[0]).length <= 2, true);
  });

  it("batches concurrent requests together", async () => {
    const before = await (await fetch(`${base}/metrics`)).text();
    const count = (text: string, key: string) =>
      Number(text.match(new RegExp(`^${key} (\\S+)$`, "m"))?.[1] ?? 0);
    const rs = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        post("/v1/chat/completions", chat({ seed: i, temperature: 1 })),
      ),
    );
    for (const r of rs) assert.equal(r.status, 200);
    const afterText = await (await fetch(`${base}/metrics`)).text();
    const batches =
      count(afterText, "abl_engine_batch_sequences_count") -
      count(before, "abl_engine_batch_sequences_count");
    const seqs =
      count(afterText, "abl_engine_batch_sequences_sum") -
      count(before, "abl_engine_batch_sequences_sum");
    assert.equal(seqs, 6);
    assert.ok(batches < 6, `6 concurrent requests ran in ${batches} batches`);
  });

  it("rejects bad requests with 400/404/413 and keeps serving", async () => {
    assert.equal((await post("/v1/chat/completions", "{not json")).status, 400);
    assert.equal((await post("/v1/chat/completions", { model: "tiny" })).status, 400);
    assert.equal(
      (await post("/v1/chat/completions", chat({ temperature: -1 }))).body.error.param,
      "temperature",
    );
    assert.equal(
      (await post("/v1/chat/completions", chat({ messages: [{ role: "wizard", content: "x" }] })))
        .status,
      400,
    );
    const long = "word ".repeat(400);
    const tooLong = await post("/v1/completions", { model: "tiny", prompt: long });
    assert.equal(tooLong.status, 400);
    assert.match(tooLong.body.error.message, /context is 256 tokens/);
    const unknown = await post("/v1/chat/completions", chat({ model: "nope" }));
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, "model_not_found");
    assert.equal((await fetch(`${base}/v2/whatever`)).status, 404);
    assert.equal((await post("/v1/completions", "x".repeat(5 * 1024 * 1024))).status, 413);
    assert.equal((await post("/v1/chat/completions", chat())).status, 200);
  });

  it("answers 429 when the queue is full and serves again afterwards", async () => {
    const rs = await Promise.all(
      Array.from({ length: 6 }, () =>
        post("/v1/chat/completions", chat({ max_tokens: 30 }), smallBase),
      ),
    );
    const statuses = rs.map((r) => r.status);
    assert.ok(statuses.includes(429), `statuses ${statuses}`);
    assert.ok(statuses.includes(200));
    const limited = rs.find((r) => r.status === 429);
    assert.equal(limited?.body.error.code, "queue_full");
    assert.equal((await post("/v1/chat/completions", chat(), smallBase)).status, 200);
  });
});
