import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createLocalStore } from "@abl/store";
import { encodeShardIndex, writeSafetensors } from "@abl/tensor";
import { loadCheckpoint } from "./checkpoint.ts";
import { localCheckpointFiles, storeCheckpointFiles } from "./checkpoint-files.ts";
import { UnknownArchitectureError } from "./errors.ts";
import { resolveWriters } from "./resolve-writers.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "abl-ckpt-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const H = 8;
const f = (n: number) => new Float32Array(n).map((_, i) => (i % 7) - 3);

async function makeCheckpoint(
  name: string,
  config: object,
  tensors: Record<string, number[]>,
  shards = 1,
): Promise<string> {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  await writeFile(join(d, "config.json"), JSON.stringify(config));
  await writeFile(join(d, "tokenizer.json"), "{}");
  const names = Object.keys(tensors);
  const map = new Map<string, string>();
  for (let s = 0; s < shards; s++) {
    const file =
      shards === 1 ? "model.safetensors" : `model-0000${s + 1}-of-0000${shards}.safetensors`;
    const part = names.filter((_, i) => i % shards === s);
    const input = Object.fromEntries(
      part.map((n) => [
        n,
        {
          shape: tensors[n]!,
          dtype: "BF16" as const,
          data: f(tensors[n]!.reduce((a, b) => a * b, 1)),
        },
      ]),
    );
    await writeSafetensors(join(d, file), input);
    for (const n of part) map.set(n, file);
  }
  if (shards > 1)
    await writeFile(join(d, "model.safetensors.index.json"), encodeShardIndex(map, 0));
  return d;
}

test("qwen3 dense, sharded, tied embeddings", async () => {
  const d = await makeCheckpoint(
    "qwen3",
    { model_type: "qwen3", hidden_size: H, num_hidden_layers: 2, tie_word_embeddings: true },
    {
      "model.embed_tokens.weight": [16, H],
      "model.layers.0.self_attn.o_proj.weight": [H, 4],
      "model.layers.0.self_attn.q_proj.weight": [4, H],
      "model.layers.0.mlp.down_proj.weight": [H, 12],
      "model.layers.1.self_attn.o_proj.weight": [H, 4],
      "model.layers.1.mlp.down_proj.weight": [H, 12],
      "model.norm.weight": [H],
    },
    3,
  );
  const ck = await loadCheckpoint(localCheckpointFiles(d));
  assert.equal(ck.shards.length, 3);
  assert.equal(ck.tiedEmbeddings, true);
  assert.equal(ck.embedName, "model.embed_tokens.weight");
  const w = resolveWriters(ck);
  assert.deepEqual(w.map((x) => `${x.target}:${x.layer ?? "-"}:${x.residualAxis}`).sort(), [
    "attn_out:0:-2",
    "attn_out:1:-2",
    "embed:-:-1",
    "mlp_out:0:-2",
    "mlp_out:1:-2",
  ]);
  // The same folder read through an object store.
  const store = createLocalStore({ root: join(dir, "store") });
  for (const file of ck.fileList) {
    await store.put(`models/x/${file.name}`, new Uint8Array(await readFile(join(d, file.name))));
  }
  const ck2 = await loadCheckpoint(storeCheckpointFiles(store, "models/x"));
  assert.equal(ck2.tensors.size, ck.tensors.size);
});

test("gemma3 multimodal with text_config, gpt-oss fused experts, qwen3.5 hybrid", async () => {
  const g = await makeCheckpoint(
    "gemma3",
    {
      model_type: "gemma3",
      text_config: { model_type: "gemma3_text", hidden_size: H, num_hidden_layers: 1 },
    },
    {
      "language_model.model.embed_tokens.weight": [10, H],
      "language_model.model.layers.0.self_attn.o_proj.weight": [H, 4],
    },
  );
  const gk = await loadCheckpoint(localCheckpointFiles(g));
  assert.equal(gk.config.modelType, "gemma3_text");
  assert.equal(resolveWriters(gk).length, 2);

  const o = await makeCheckpoint(
    "gptoss",
    { model_type: "gpt_oss", hidden_size: H, num_hidden_layers: 1 },
    {
      "model.embed_tokens.weight": [10, H],
      "lm_head.weight": [10, H],
      "model.layers.0.mlp.experts.down_proj": [2, 6, H],
      "model.layers.0.mlp.experts.down_proj_bias": [2, H],
      "model.layers.0.self_attn.o_proj.weight": [H, 4],
      "model.layers.0.self_attn.o_proj.bias": [H],
    },
  );
  const ok = await loadCheckpoint(localCheckpointFiles(o));
  assert.equal(ok.tiedEmbeddings, false);
  const ow = resolveWriters(ok);
  assert.equal(ow.find((x) => x.name.endsWith("experts.down_proj"))?.residualAxis, -1);
  assert.equal(ow.filter((x) => x.target === "bias").length, 2);

  const q = await makeCheckpoint(
    "qwen35",
    {
      model_type: "qwen3_5_moe",
      text_config: { model_type: "qwen3_5_moe_text", hidden_size: H, num_hidden_layers: 2 },
    },
    {
      "model.language_model.layers.0.linear_attn.out_proj.weight": [H, 4],
      "model.language_model.layers.1.self_attn.o_proj.weight": [H, 4],
      "model.language_model.layers.0.mlp.experts.down_proj": [3, H, 5],
      "model.language_model.layers.0.mlp.shared_expert.down_proj.weight": [H, 5],
    },
  );
  const qw = resolveWriters(await loadCheckpoint(localCheckpointFiles(q)));
  assert.deepEqual(qw.map((x) => x.target).sort(), ["attn_out", "attn_out", "experts", "experts"]);
});

test("unknown architecture lists candidates; explicit rules work; bad inputs are named", async () => {
  const d = await makeCheckpoint(
    "weird",
    { model_type: "weirdnet", hidden_size: H, num_hidden_layers: 1 },
    { "blocks.0.mixer.out.weight": [H, 4], "blocks.0.mixer.q_proj.weight": [4, H] },
  );
  const ck = await loadCheckpoint(localCheckpointFiles(d));
  assert.throws(
    () => resolveWriters(ck),
    (e: unknown) =>
      e instanceof UnknownArchitectureError &&
      /blocks\.\*\.mixer\.out\.weight/.test(e.message) &&
      !/q_proj/.test(e.message),
  );
  const w = resolveWriters(ck, {
    rules: [
      {
        pattern: String.raw`blocks\.(?<layer>\d+)\.mixer\.out\.weight$`,
        target: "attn_out",
        residualAxis: -2,
      },
    ],
  });
  assert.equal(w[0]?.layer, 0);
  assert.throws(
    () =>
      resolveWriters(ck, {
        rules: [{ pattern: String.raw`mixer\.out\.weight$`, target: "attn_out", residualAxis: -1 }],
      }),
    /axis -1 is 4, not hidden_size 8/,
  );
  await rm(join(d, "model.safetensors"));
  await assert.rejects(
    loadCheckpoint(localCheckpointFiles(d)),
    /neither model.safetensors.index.json nor model.safetensors/,
  );
  const s = await makeCheckpoint(
    "missing",
    { model_type: "llama", hidden_size: H, num_hidden_layers: 1 },
    { a: [H], b: [H] },
    2,
  );
  await rm(join(s, "model-00002-of-00002.safetensors"));
  await assert.rejects(
    loadCheckpoint(localCheckpointFiles(s)),
    /names shard "model-00002-of-00002.safetensors", which is missing/,
  );
});
