/**
 * `abl patch` killed with SIGKILL in the middle leaves nothing published, and the rerun
 * completes (removing the dead run's temp folder).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { encodeShardIndex, writeSafetensors } from "@abl/tensor";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const H = 512;
const LAYERS = 4;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "abl-patch-kill-"));
  const model = join(dir, "model");
  await mkdir(model);
  const fill = (n: number) => new Float32Array(n).map((_, i) => Math.sin(i * 0.7) * 0.05);
  const map = new Map<string, string>();
  // One shard per layer plus one for the embeddings: the CLI reports each shard as it lands.
  await writeSafetensors(join(model, "model-00001-of-00005.safetensors"), {
    "model.embed_tokens.weight": { shape: [8192, H], dtype: "BF16", data: fill(8192 * H) },
  });
  map.set("model.embed_tokens.weight", "model-00001-of-00005.safetensors");
  for (let l = 0; l < LAYERS; l++) {
    const file = `model-0000${l + 2}-of-00005.safetensors`;
    const p = `model.layers.${l}.`;
    await writeSafetensors(join(model, file), {
      [`${p}self_attn.o_proj.weight`]: { shape: [H, H], dtype: "BF16", data: fill(H * H) },
      [`${p}mlp.down_proj.weight`]: { shape: [H, 4 * H], dtype: "BF16", data: fill(4 * H * H) },
    });
    map.set(`${p}self_attn.o_proj.weight`, file);
    map.set(`${p}mlp.down_proj.weight`, file);
  }
  await writeFile(join(model, "model.safetensors.index.json"), encodeShardIndex(map, 0));
  await writeFile(
    join(model, "config.json"),
    JSON.stringify({
      model_type: "llama",
      hidden_size: H,
      num_hidden_layers: LAYERS,
      tie_word_embeddings: false,
    }),
  );
  await writeFile(
    join(dir, "direction.f32"),
    new Uint8Array(new Float32Array(H).map((_, i) => Math.cos(i)).buffer),
  );
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function patch(
  out: string,
  killOnFirstShard: boolean,
): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(ROOT, "cli/src/main.ts"),
      "patch",
      "--model",
      join(dir, "model"),
      "--direction",
      join(dir, "direction.f32"),
      "--out",
      out,
    ],
    { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
    if (killOnFirstShard && /wrote model-00001/.test(stderr)) child.kill("SIGKILL");
  });
  return new Promise((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stderr })),
  );
}

test("SIGKILL mid-patch publishes nothing; the rerun completes", async () => {
  const out = join(dir, "patched");
  const killed = await patch(out, true);
  assert.equal(
    killed.signal,
    "SIGKILL",
    `the run ended before it could be killed: ${killed.stderr}`,
  );
  const after1 = await readdir(dir);
  assert.equal(after1.includes("patched"), false, "a killed run must not publish");
  assert.equal(
    after1.filter((n) => n.startsWith(".patched.abl-tmp-")).length,
    1,
    "the killed run's temp folder is hidden",
  );

  const rerun = await patch(out, false);
  assert.equal(rerun.code, 0, rerun.stderr);
  const after2 = await readdir(dir);
  assert.deepEqual(
    after2.filter((n) => n.startsWith(".patched")),
    [],
    "the dead run's temp folder is cleaned up",
  );
  const report = JSON.parse(await readFile(join(out, "abliteration.json"), "utf8"));
  assert.equal(report.tensors.length, 1 + 2 * LAYERS);
  assert.deepEqual((await readdir(out)).sort(), [
    "abliteration.json",
    "config.json",
    "model-00001-of-00005.safetensors",
    "model-00002-of-00005.safetensors",
    "model-00003-of-00005.safetensors",
    "model-00004-of-00005.safetensors",
    "model-00005-of-00005.safetensors",
    "model.safetensors.index.json",
  ]);
});
