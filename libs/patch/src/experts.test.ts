import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadCheckpoint, localCheckpointFiles } from "@abl/checkpoint";
import { readSafetensors, writeSafetensors } from "@abl/tensor";
import { makeDirections } from "./direction.ts";
import { createLocalOutput } from "./output.ts";
import { type AbliterationReport, patchCheckpoint } from "./patch-checkpoint.ts";
import { buildPlan } from "./plan.ts";

const H = 16;
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "abl-experts-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const values = (n: number, seed: number) =>
  new Float32Array(n).map((_, i) => Math.sin(i * 1.3 + seed) * 0.1);

/** f64 reference: each `[H, n]` slice W − r (rᵀW), or each length-H vector e − (e·r) r. */
function reference(w: Float32Array, shape: number[], axis: -1 | -2, r: Float64Array): Float64Array {
  const out = Float64Array.from(w);
  if (axis === -1) {
    for (let k = 0; k < w.length / H; k++) {
      let d = 0;
      for (let i = 0; i < H; i++) d += w[k * H + i]! * r[i]!;
      for (let i = 0; i < H; i++) out[k * H + i]! -= d * r[i]!;
    }
    return out;
  }
  const n = shape[shape.length - 1]!;
  for (let s = 0; s < w.length / (H * n); s++) {
    for (let j = 0; j < n; j++) {
      let d = 0;
      for (let i = 0; i < H; i++) d += w[s * H * n + i * n + j]! * r[i]!;
      for (let i = 0; i < H; i++) out[s * H * n + i * n + j]! -= d * r[i]!;
    }
  }
  return out;
}

async function check(
  name: string,
  config: object,
  tensors: Record<string, { shape: number[]; axis: -1 | -2 | 0 }>,
) {
  const model = join(dir, name);
  await mkdir(model);
  const data = Object.fromEntries(
    Object.entries(tensors).map(([n, t], i) => [
      n,
      {
        shape: t.shape,
        data: values(
          t.shape.reduce((a, b) => a * b, 1),
          i,
        ),
      },
    ]),
  );
  await writeSafetensors(join(model, "model.safetensors"), data);
  await writeFile(join(model, "config.json"), JSON.stringify(config));
  const ck = await loadCheckpoint(localCheckpointFiles(model));
  const raw = new Float32Array(H).map((_, i) => Math.cos(i * 0.9) + 0.2);
  const directions = makeDirections([raw], H, "test");
  const r = directions.rows[0]!;
  const out = join(dir, `${name}-out`);
  const gen = patchCheckpoint(ck, buildPlan(ck, directions), await createLocalOutput(out), {
    bufferBytes: 256,
  });
  let report: AbliterationReport | undefined;
  while (!report) {
    const step = await gen.next();
    if (step.done) report = step.value;
  }
  const f = await readSafetensors(join(out, "model.safetensors"));
  try {
    for (const [n, t] of Object.entries(tensors)) {
      const got = await f.tensor(n);
      const want =
        t.axis === 0
          ? Float64Array.from(data[n]!.data)
          : reference(data[n]!.data, t.shape, t.axis, r);
      for (let i = 0; i < got.length; i++) {
        assert.ok(
          Math.abs(got[i]! - want[i]!) <= 1e-7,
          `${name} ${n}[${i}]: ${got[i]} vs ${want[i]}`,
        );
      }
      const entry: { leakage: number } | undefined = report.tensors.find((x) => x.name === n);
      assert.equal(entry !== undefined, t.axis !== 0, `${n} edited?`);
      if (entry) assert.ok(entry.leakage < 1e-6, `${n} leakage ${entry.leakage}`);
    }
  } finally {
    await f.close();
  }
  return JSON.parse(await readFile(join(out, "abliteration.json"), "utf8"));
}

test("gpt-oss fused experts (hidden last) and output biases", async () => {
  const rep = await check(
    "gptoss",
    { model_type: "gpt_oss", hidden_size: H, num_hidden_layers: 1 },
    {
      "model.embed_tokens.weight": { shape: [10, H], axis: -1 },
      "lm_head.weight": { shape: [10, H], axis: 0 },
      "model.layers.0.self_attn.o_proj.weight": { shape: [H, 8], axis: -2 },
      "model.layers.0.self_attn.o_proj.bias": { shape: [H], axis: -1 },
      "model.layers.0.self_attn.q_proj.weight": { shape: [8, H], axis: 0 },
      "model.layers.0.mlp.experts.down_proj": { shape: [3, 6, H], axis: -1 },
      "model.layers.0.mlp.experts.down_proj_bias": { shape: [3, H], axis: -1 },
    },
  );
  assert.equal(rep.untied, false);
});

test("qwen3.5 MoE: fused [experts, hidden, ff], shared expert, linear attention out_proj", async () => {
  await check(
    "qwen35",
    {
      model_type: "qwen3_5_moe",
      text_config: { model_type: "qwen3_5_moe_text", hidden_size: H, num_hidden_layers: 2 },
    },
    {
      "model.language_model.layers.0.linear_attn.out_proj.weight": { shape: [H, 12], axis: -2 },
      "model.language_model.layers.1.self_attn.o_proj.weight": { shape: [H, 8], axis: -2 },
      "model.language_model.layers.0.mlp.experts.down_proj": { shape: [4, H, 5], axis: -2 },
      "model.language_model.layers.0.mlp.shared_expert.down_proj.weight": {
        shape: [H, 5],
        axis: -2,
      },
      "model.language_model.layers.0.mlp.gate.weight": { shape: [4, H], axis: 0 },
    },
  );
});

test("qwen3_moe per-expert keys with a buffer smaller than one slice (two-pass path)", async () => {
  await check(
    "qwen3moe",
    { model_type: "qwen3_moe", hidden_size: H, num_hidden_layers: 1 },
    {
      "model.layers.0.mlp.experts.0.down_proj.weight": { shape: [H, 24], axis: -2 },
      "model.layers.0.mlp.experts.1.down_proj.weight": { shape: [H, 24], axis: -2 },
    },
  );
});
