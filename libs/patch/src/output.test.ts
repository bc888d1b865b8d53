import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { loadCheckpoint, localCheckpointFiles } from "@abl/checkpoint";
import { writeSafetensors } from "@abl/tensor";
import { makeDirections } from "./direction.ts";
import { createLocalOutput, DIRECT_ALIGN, DIRECT_PIECE_BYTES } from "./output.ts";
import { patchCheckpoint } from "./patch-checkpoint.ts";
import { buildPlan } from "./plan.ts";
import { pageAlignedBytes } from "./workers.ts";

let root = "";
before(async () => {
  root = await mkdtemp(join(tmpdir(), "abl-output-"));
});
after(() => rm(root, { recursive: true, force: true }));

/** Deterministic bytes that differ at every offset a misplaced write could hit. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

for (const directIo of [true, false]) {
  it(`positional writes at unaligned offsets, out of order and concurrent, land exactly (direct I/O ${directIo ? "on" : "off"})`, async () => {
    // Two files: one with pieces straddling page and direct-piece boundaries, one below the
    // direct-write threshold.
    const size = 2 * DIRECT_PIECE_BYTES + 3 * DIRECT_ALIGN + 777;
    const want = pattern(size, 7);
    const small = pattern(12_345, 9);
    const dir = join(root, `out-${directIo}`);
    const out = await createLocalOutput(dir, { directIo });
    const sink = await out.file("model.safetensors", size);
    // Cut points at odd offsets; the header-like head goes through write(), the rest through
    // writeAt() two at a time, later pieces first.
    const cuts = [
      0,
      8,
      4103,
      DIRECT_ALIGN * 5 + 1,
      DIRECT_PIECE_BYTES - 3,
      DIRECT_PIECE_BYTES + 65_537,
      size,
    ];
    await sink.write(want.subarray(0, 8));
    const pieces = cuts.slice(1, -1).map((c, i) => [c, cuts[i + 2] as number] as const);
    for (let i = pieces.length - 1; i >= 0; i -= 2) {
      const [a, b] = pieces[i] as readonly [number, number];
      const second = pieces[i - 1];
      await Promise.all([
        sink.writeAt?.(want.subarray(a, b), a),
        second ? sink.writeAt?.(want.subarray(second[0], second[1]), second[0]) : undefined,
      ]);
    }
    await sink.commit();
    const s = await out.file("tokenizer.json", small.byteLength);
    await s.write(small);
    await s.commit();
    await out.publish({});
    assert.deepEqual((await readdir(dir)).sort(), ["model.safetensors", "tokenizer.json"]);
    assert.ok(Buffer.from(want).equals(await readFile(join(dir, "model.safetensors"))));
    assert.ok(Buffer.from(small).equals(await readFile(join(dir, "tokenizer.json"))));
    // Plain Node memory has no known page alignment: whole pages go through a staging slot.
    const io = out.io!;
    assert.equal(io.direct, 0);
    if (directIo) assert.ok(io.staged > 0 && io.buffered < size, JSON.stringify(io));
    else assert.equal(io.staged, 0);
    assert.equal(io.direct + io.staged + io.buffered, size + small.byteLength);
  });
}

it("chunks whose addresses line up with the file's pages are written direct from their memory", async () => {
  const size = 2 * DIRECT_PIECE_BYTES + 5 * DIRECT_ALIGN + 321;
  // The whole file image in page-aligned memory: the chunk for [a, b) is mem[a, b), so its
  // address is congruent to its file position modulo the page size.
  const mem = pageAlignedBytes(size);
  mem.set(pattern(size, 11));
  const dir = join(root, "in-place");
  const out = await createLocalOutput(dir);
  const sink = await out.file("model.safetensors", size);
  await sink.write(mem.subarray(0, 13));
  const cuts = [13, 4099, 3 * DIRECT_ALIGN + 2, DIRECT_PIECE_BYTES + 17, size - 100, size];
  const pieces = cuts.slice(0, -1).map((c, i) => [c, cuts[i + 1] as number] as const);
  // Out of order and all at once.
  await Promise.all(pieces.reverse().map(([a, b]) => sink.writeAt?.(mem.subarray(a, b), a)));
  await sink.commit();
  await out.publish({});
  assert.ok(
    Buffer.from(mem.subarray(0, size)).equals(await readFile(join(dir, "model.safetensors"))),
  );
  const io = out.io!;
  assert.equal(io.staged, 0, JSON.stringify(io));
  assert.equal(io.direct + io.buffered, size);
  // Only the partial pages at the chunk edges went through the page cache.
  assert.ok(io.buffered <= pieces.length * 2 * DIRECT_ALIGN + 13, JSON.stringify(io));
});

it("the patcher places its chunks for direct writes: nothing staged, bytes equal to a buffered run", async () => {
  // A llama-shaped bf16 checkpoint over the direct-write threshold; the 512-byte norms and the
  // header put tensor data at positions that are not page-aligned.
  const h = 256;
  const ff = 1024;
  const vocab = 8192;
  const model = join(root, "llama");
  await mkdir(model);
  const t = (shape: number[], seed: number) => ({
    shape,
    dtype: "BF16" as const,
    data: new Float32Array(shape.reduce((a, b) => a * b, 1)).map(
      (_, i) => Math.sin(i * 0.7 + seed) * 0.05,
    ),
  });
  const tensors: Record<string, ReturnType<typeof t>> = {
    "model.embed_tokens.weight": t([vocab, h], 1),
  };
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}.`;
    Object.assign(tensors, {
      [`${p}input_layernorm.weight`]: t([h], 2),
      [`${p}self_attn.q_proj.weight`]: t([h, h], 3),
      [`${p}self_attn.k_proj.weight`]: t([h, h], 4),
      [`${p}self_attn.v_proj.weight`]: t([h, h], 5),
      [`${p}self_attn.o_proj.weight`]: t([h, h], 6),
      [`${p}post_attention_layernorm.weight`]: t([h], 7),
      [`${p}mlp.gate_proj.weight`]: t([ff, h], 8),
      [`${p}mlp.up_proj.weight`]: t([ff, h], 9),
      [`${p}mlp.down_proj.weight`]: t([h, ff], 10),
    });
  }
  tensors["model.norm.weight"] = t([h], 11);
  await writeSafetensors(join(model, "model.safetensors"), tensors, { format: "pt" });
  await writeFile(
    join(model, "config.json"),
    JSON.stringify({
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      hidden_size: h,
      intermediate_size: ff,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 4,
      vocab_size: vocab,
      tie_word_embeddings: true,
    }),
  );
  const ck = await loadCheckpoint(localCheckpointFiles(model));
  const r = new Float32Array(h).map((_, i) => Math.cos(i * 0.37) + 0.2);
  const plan = buildPlan(ck, makeDirections([r], h, "test direction"));
  const runs: { bytes: Buffer; io: { direct: number; staged: number; buffered: number } }[] = [];
  // A 1 MiB ring takes the two-pass path for down_proj; 128 MiB (the default) whole slices.
  for (const [name, directIo, bufferBytes] of [
    ["buffered", false, 1 << 20],
    ["direct-small-ring", true, 1 << 20],
    ["direct", true, undefined],
  ] as const) {
    const dir = join(root, `patched-${name}`);
    const out = await createLocalOutput(dir, { directIo });
    const gen = patchCheckpoint(ck, plan, out, bufferBytes ? { bufferBytes } : {});
    while (!(await gen.next()).done) {
      // drain
    }
    runs.push({ bytes: await readFile(join(dir, "model.safetensors")), io: { ...out.io! } });
  }
  const [buffered, ...direct] = runs;
  assert.ok(buffered!.bytes.byteLength > 2 * DIRECT_PIECE_BYTES);
  for (const run of direct) {
    assert.ok(run.bytes.equals(buffered!.bytes));
    assert.equal(run.io.staged, 0, JSON.stringify(run.io));
    assert.ok(run.io.direct > 0.9 * run.bytes.byteLength, JSON.stringify(run.io));
  }
});

it("an aborted output leaves nothing, direct writes included", async () => {
  const dir = join(root, "aborted");
  const out = await createLocalOutput(dir);
  const sink = await out.file("model.safetensors", 2 * DIRECT_PIECE_BYTES);
  await sink.writeAt?.(pattern(DIRECT_PIECE_BYTES, 3), 0);
  await sink.abort();
  await out.abort();
  assert.deepEqual(
    (await readdir(root)).filter((n) => n.includes("aborted")),
    [],
  );
});
