import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type CheckpointFiles, loadCheckpoint, localCheckpointFiles } from "@abl/checkpoint";
import { bf16ToF32, readSafetensors, type SafetensorsFile } from "@abl/tensor";
import { parseDirectionFile } from "./direction.ts";
import { createLocalOutput } from "./output.ts";
import { type AbliterationReport, type PatchOptions, patchCheckpoint } from "./patch-checkpoint.ts";
import { buildPlan, type PlanOptions } from "./plan.ts";

const FIX = fileURLToPath(new URL("../fixtures/", import.meta.url));
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "abl-patch-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(
  model: string,
  out: string,
  opts: PlanOptions & { direction?: string; layer?: number; buffer?: number } = {},
) {
  const ck = await loadCheckpoint(localCheckpointFiles(model));
  const bytes = new Uint8Array(await readFile(opts.direction ?? join(FIX, "direction.f32")));
  const directions = await parseDirectionFile(bytes, {
    hidden: ck.config.hiddenSize,
    ...(opts.layer === undefined ? {} : { layer: opts.layer }),
  });
  const plan = buildPlan(ck, directions, opts);
  // A small ring by default: chunked rows and the two-pass path for slices that do not fit.
  const gen = patchCheckpoint(ck, plan, await createLocalOutput(out), {
    bufferBytes: opts.buffer ?? 4096,
  });
  for (;;) {
    const r = await gen.next();
    if (r.done) return r.value;
  }
}

/** Every tensor of a (sharded) folder: name → open file. */
async function tensorsOf(folder: string): Promise<Map<string, SafetensorsFile>> {
  const out = new Map<string, SafetensorsFile>();
  for (const f of (await readdir(folder)).filter((n) => n.endsWith(".safetensors"))) {
    const s = await readSafetensors(join(folder, f));
    for (const n of s.names) out.set(n, s);
  }
  return out;
}

async function closeAll(m: Map<string, SafetensorsFile>) {
  for (const s of new Set(m.values())) await s.close();
}

/** Distance in bf16 ulps between two bf16 bit patterns (±0 equal). */
function ulps(a: number, b: number): number {
  const ord = (x: number) => (x & 0x8000 ? -(x & 0x7fff) : x);
  return Math.abs(ord(a) - ord(b));
}

async function directionUnit(): Promise<Float64Array> {
  const raw = new Float32Array(new Uint8Array(await readFile(join(FIX, "direction.f32"))).buffer);
  let n = 0;
  for (const x of raw) n += x * x;
  return Float64Array.from(raw, (x) => x / Math.sqrt(n));
}

/** Ring sizes the golden tests run with: chunked + two-pass, and whole slices in one block. */
const RINGS = [4096, 1 << 20] as const;

test("bf16 golden: within one bf16 ulp of torch_patch.py, untouched tensors byte-identical, untied", async () => {
  const shas: string[] = [];
  for (const buffer of RINGS) shas.push(JSON.stringify((await bf16Golden(buffer)).files));
  // Chunking and the split across kernel workers do not change a single output byte.
  assert.equal(shas[0], shas[1]);
});

async function bf16Golden(buffer: number): Promise<AbliterationReport> {
  const model = join(FIX, "tiny-bf16");
  const out = join(dir, `bf16-${buffer}`);
  const rep = await run(model, out, { buffer });
  const ours = await tensorsOf(out);
  const torch = await tensorsOf(join(FIX, "tiny-bf16.torch"));
  const input = await tensorsOf(model);
  try {
    const edited = new Set(rep.tensors.map((t) => t.name));
    assert.equal(edited.size, 5);
    let differing = 0;
    let total = 0;
    for (const [name, tf] of torch) {
      const a = await ours.get(name)!.bytes(name);
      const b = await tf.bytes(name);
      const orig = await input.get(name)!.bytes(name);
      if (!edited.has(name)) {
        assert.deepEqual(a, orig, `${name} must be byte-identical`);
        continue;
      }
      const ua = new Uint16Array(a.buffer, a.byteOffset, a.byteLength / 2);
      const ub = new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
      for (let i = 0; i < ua.length; i++) {
        const d = ulps(ua[i]!, ub[i]!);
        assert.ok(d <= 1, `${name}[${i}]: ${bf16ToF32(ua[i]!)} vs torch ${bf16ToF32(ub[i]!)}`);
        if (d) differing++;
        total++;
      }
    }
    assert.ok(differing < total * 0.01, `${differing} of ${total} elements differ by one ulp`);
    // Tied embeddings: lm_head.weight = the original embeddings, config untied, index updated.
    const head = await ours.get("lm_head.weight")!.bytes("lm_head.weight");
    assert.deepEqual(
      head,
      await input.get("model.embed_tokens.weight")!.bytes("model.embed_tokens.weight"),
    );
    const cfg = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    assert.equal(cfg.tie_word_embeddings, false);
    const index = JSON.parse(await readFile(join(out, "model.safetensors.index.json"), "utf8"));
    assert.equal(index.weight_map["lm_head.weight"], index.weight_map["model.embed_tokens.weight"]);
    assert.equal(
      await readFile(join(out, "tokenizer.json"), "utf8"),
      await readFile(join(model, "tokenizer.json"), "utf8"),
    );
    for (const t of rep.tensors) assert.ok(t.leakage <= 3e-3, `${t.name} leakage ${t.leakage}`);
    // The report's sha256s match the files, and the report is on disk.
    const onDisk: AbliterationReport = JSON.parse(
      await readFile(join(out, "abliteration.json"), "utf8"),
    );
    assert.deepEqual(onDisk.files, rep.files);
    for (const f of rep.files) {
      assert.equal(
        createHash("sha256")
          .update(await readFile(join(out, f.name)))
          .digest("hex"),
        f.sha256,
        f.name,
      );
    }
    assert.deepEqual(
      rep.files.map((f) => f.name),
      [
        "config.json",
        "generation_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
      ],
    );
    return rep;
  } finally {
    await closeAll(ours);
    await closeAll(torch);
    await closeAll(input);
  }
}

test("f32 golden: matches torch closely and leakage ≤ 1e-6", async () => {
  const out = join(dir, "f32");
  const rep = await run(join(FIX, "tiny-f32"), out);
  const ours = await tensorsOf(out);
  const torch = await tensorsOf(join(FIX, "tiny-f32.torch"));
  try {
    for (const [name, tf] of torch) {
      const a = await ours.get(name)!.tensor(name);
      const b = await tf.tensor(name);
      for (let i = 0; i < a.length; i++) {
        assert.ok(
          Math.abs(a[i]! - b[i]!) <= 1e-6 * Math.max(1, Math.abs(b[i]!)),
          `${name}[${i}] ${a[i]} vs ${b[i]}`,
        );
      }
    }
    assert.equal(rep.untied, false);
    for (const t of rep.tensors) assert.ok(t.leakage <= 1e-6, `${t.name} leakage ${t.leakage}`);
    // Independent check of rᵀW′ on one matrix, and of ‖W′ − W‖/‖W‖ = ‖rᵀW‖/‖W‖ for λ = 1.
    const r = await directionUnit();
    const input = await readSafetensors(join(FIX, "tiny-f32/model.safetensors"));
    const w0 = await input.tensor("model.layers.1.mlp.down_proj.weight");
    await input.close();
    let proj = 0;
    let norm = 0;
    for (let j = 0; j < 80; j++) {
      let d = 0;
      for (let i = 0; i < 64; i++) d += r[i]! * w0[i * 80 + j]!;
      proj += d * d;
    }
    for (const x of w0) norm += x * x;
    const entry = rep.tensors.find((t) => t.name === "model.layers.1.mlp.down_proj.weight")!;
    assert.ok(
      Math.abs(entry.relativeNormChange - Math.sqrt(proj / norm)) < 1e-6,
      `${entry.relativeNormChange}`,
    );
    const w = await ours
      .get("model.layers.1.mlp.down_proj.weight")!
      .tensor("model.layers.1.mlp.down_proj.weight");
    const [h, n] = [64, 80];
    for (let j = 0; j < n; j++) {
      let d = 0;
      for (let i = 0; i < h; i++) d += r[i]! * w[i * n + j]!;
      assert.ok(Math.abs(d) < 1e-6, `column ${j}: rᵀw′ = ${d}`);
    }
  } finally {
    await closeAll(ours);
    await closeAll(torch);
  }
});

async function columnNorms(
  f: SafetensorsFile,
  name: string,
  h: number,
  n: number,
): Promise<number[]> {
  const w = await f.tensor(name);
  return Array.from({ length: n }, (_, j) => {
    let s = 0;
    for (let i = 0; i < h; i++) s += w[i * n + j]! ** 2;
    return Math.sqrt(s);
  });
}

test("norm-preserving keeps every write vector's norm and removes r", async () => {
  for (const [fixture, tol, leak, buffer] of [
    ["tiny-bf16", 2 ** -8, 3e-3, RINGS[0]],
    ["tiny-bf16", 2 ** -8, 3e-3, RINGS[1]],
    ["tiny-f32", 1e-6, 1e-6, RINGS[0]],
  ] as const) {
    const out = join(dir, `np-${fixture}-${buffer}`);
    const rep = await run(join(FIX, fixture), out, { method: "norm-preserving", buffer });
    const ours = await tensorsOf(out);
    const input = await tensorsOf(join(FIX, fixture));
    try {
      for (const t of rep.tensors) {
        assert.ok(t.leakage <= leak, `${fixture} ${t.name} leakage ${t.leakage}`);
        assert.ok(
          (t.maxVectorNormChange ?? 1) <= tol,
          `${fixture} ${t.name} norm change ${t.maxVectorNormChange}`,
        );
      }
      const name = "model.layers.0.self_attn.o_proj.weight";
      const before = await columnNorms(input.get(name)!, name, 64, 64);
      const after = await columnNorms(ours.get(name)!, name, 64, 64);
      for (const [j, b] of before.entries()) {
        assert.ok(Math.abs(after[j]! / b - 1) <= tol, `${fixture} column ${j}: ${b} → ${after[j]}`);
      }
      // Embedding rows (hidden last) keep their norms too.
      const e = "model.embed_tokens.weight";
      const eb = await input.get(e)!.tensor(e);
      const ea = await ours.get(e)!.tensor(e);
      for (let k = 0; k < 96; k++) {
        let nb = 0;
        let na = 0;
        for (let i = 0; i < 64; i++) {
          nb += eb[k * 64 + i]! ** 2;
          na += ea[k * 64 + i]! ** 2;
        }
        assert.ok(Math.abs(Math.sqrt(na / nb) - 1) <= tol, `${fixture} row ${k}`);
      }
    } finally {
      await closeAll(ours);
      await closeAll(input);
    }
  }
});

test("per-layer directions with a tent kernel, target selection, λ = 0 leaves tensors untouched", async () => {
  const out = join(dir, "tent");
  const rep = await run(join(FIX, "tiny-f32"), out, {
    direction: join(FIX, "directions.safetensors"),
    targets: ["attn_out", "mlp_out"],
    strength: { type: "tent", peak: 1, width: 1, max: 1, min: 0.5 },
  });
  const byName = new Map(rep.tensors.map((t) => [t.name, t]));
  assert.equal(byName.has("model.embed_tokens.weight"), false);
  assert.equal(byName.get("model.layers.1.self_attn.o_proj.weight")?.lambda, 1);
  assert.equal(byName.get("model.layers.1.self_attn.o_proj.weight")?.directionRow, 2);
  assert.equal(byName.get("model.layers.0.mlp.down_proj.weight")?.lambda, 0.5);
  assert.equal(byName.get("model.layers.0.mlp.down_proj.weight")?.directionRow, 1);
  // λ = 1 removes row 2's direction from layer 1 exactly.
  assert.ok(byName.get("model.layers.1.mlp.down_proj.weight")!.leakage < 1e-6);
  // λ = 0.5 halves the component: leakage 0.5.
  assert.ok(Math.abs(byName.get("model.layers.0.mlp.down_proj.weight")!.leakage - 0.5) < 1e-6);

  const zero = join(dir, "zero");
  const rep0 = await run(join(FIX, "tiny-f32"), zero, {
    strength: { type: "per-layer", values: [0, 1] },
    embedScale: 0,
  });
  assert.deepEqual(rep0.tensors.map((t) => t.layer).sort(), [1, 1]);
  const picked = await run(join(FIX, "tiny-f32"), join(dir, "picked"), {
    direction: join(FIX, "directions.safetensors"),
    layer: 2,
  });
  assert.equal(picked.direction.rows, 1);
  assert.match(picked.direction.source, /#2$/);
});

async function leftovers(parent: string, base: string): Promise<string[]> {
  return (await readdir(parent)).filter((n) => n === base || n.startsWith(`.${base}.abl-tmp-`));
}

test("bad input: clear errors and nothing left behind", async () => {
  const bad = async (
    name: string,
    mutate: (d: string) => Promise<void>,
    re: RegExp,
    opts: Parameters<typeof run>[2] = {},
  ) => {
    const model = join(dir, `in-${name}`);
    await cp(join(FIX, "tiny-bf16"), model, { recursive: true });
    await mutate(model);
    const out = join(dir, `out-${name}`);
    await assert.rejects(run(model, out, opts), re, name);
    assert.deepEqual(await leftovers(dir, `out-${name}`), [], `${name} left output behind`);
  };
  const shard = "model-00002-of-00002.safetensors";
  const edit = async (d: string, f: (b: Buffer) => Buffer) =>
    writeFile(join(d, shard), f(await readFile(join(d, shard))));
  const setHeader = async (
    d: string,
    f: (h: Record<string, { data_offsets: number[]; dtype: string }>) => void,
  ) =>
    edit(d, (b) => {
      const n = Number(b.readBigUInt64LE(0));
      const h = JSON.parse(b.subarray(8, 8 + n).toString());
      f(h);
      let j = Buffer.from(JSON.stringify(h));
      j = Buffer.concat([j, Buffer.alloc(n - j.length, 0x20)]);
      assert.equal(j.length, n);
      return Buffer.concat([b.subarray(0, 8), j, b.subarray(8 + n)]);
    });
  await bad(
    "truncated",
    (d) => edit(d, (b) => b.subarray(0, b.length - 100)),
    /file holds .* \(truncated\?\)/,
  );
  await bad(
    "header-length",
    (d) =>
      edit(d, (b) => {
        b.writeBigUInt64LE(10n ** 6n, 0);
        return b;
      }),
    /header length 1000000 runs beyond the end/,
  );
  await bad(
    "overlap",
    (d) =>
      setHeader(d, (h) => {
        const t = h["model.norm.weight"]!;
        t.data_offsets = [t.data_offsets[0]! - 2, t.data_offsets[1]! - 2];
      }),
    /overlap the previous tensor|leave a gap/,
  );
  await bad(
    "dtype",
    (d) =>
      setHeader(d, (h) => {
        h["model.norm.weight"]!.dtype = "Q8_0";
      }),
    /unknown dtype "Q8_0"/,
  );
  await bad(
    "missing-shard",
    (d) => rm(join(d, shard)),
    /names shard "model-00002-of-00002.safetensors", which is missing/,
  );
  const dirFile = join(dir, "dir-bad");
  await writeFile(dirFile, new Uint8Array(new Float32Array(63).buffer));
  await bad("short-direction", async () => {}, /has 63 values, but hidden_size is 64/, {
    direction: dirFile,
  });
  const zeros = join(dir, "dir-zero");
  await writeFile(zeros, new Uint8Array(new Float32Array(64).buffer));
  await bad("zero-direction", async () => {}, /all zeros/, { direction: zeros });
  const nan = join(dir, "dir-nan");
  await writeFile(nan, new Uint8Array(new Float32Array(64).fill(Number.NaN).buffer));
  await bad("nan-direction", async () => {}, /non-finite value \(NaN\)/, { direction: nan });
  await bad("layer-range", async () => {}, /layer 3 is out of range 0..2/, {
    direction: join(FIX, "directions.safetensors"),
    layer: 3,
  });
});

test("abort mid-way leaves nothing; a rerun completes", async () => {
  const model = join(FIX, "tiny-bf16");
  const out = join(dir, "aborted");
  const ck = await loadCheckpoint(localCheckpointFiles(model));
  const directions = await parseDirectionFile(
    new Uint8Array(await readFile(join(FIX, "direction.f32"))),
    { hidden: 64 },
  );
  const ac = new AbortController();
  const gen = patchCheckpoint(ck, buildPlan(ck, directions), await createLocalOutput(out), {
    signal: ac.signal,
    bufferBytes: 4096,
  });
  let steps = 0;
  await assert.rejects(async () => {
    for await (const e of gen) {
      if (e.type === "progress" && ++steps === 3) ac.abort(new Error("stop"));
    }
  }, /stop/);
  assert.deepEqual(await leftovers(dir, "aborted"), []);
  const rep = await run(model, out);
  assert.equal(rep.tensors.length, 5);
  assert.deepEqual(await leftovers(dir, "aborted"), ["aborted"]);
});

test("shards patched at once: the same bytes and report as one at a time; a failing shard stops the rest", async () => {
  const model = join(FIX, "tiny-bf16");
  const directions = await parseDirectionFile(
    new Uint8Array(await readFile(join(FIX, "direction.f32"))),
    { hidden: 64 },
  );
  const patchInto = async (out: string, files: CheckpointFiles, options: PatchOptions) => {
    const ck = await loadCheckpoint(files);
    const gen = patchCheckpoint(
      ck,
      buildPlan(ck, directions),
      await createLocalOutput(out),
      options,
    );
    const seen = new Set<string>();
    for (;;) {
      const r = await gen.next();
      if (r.done) return { report: r.value, seen };
      if (r.value.type === "file") seen.add(r.value.name);
    }
  };
  const folder = async (d: string) =>
    Object.fromEntries(
      await Promise.all(
        (await readdir(d))
          .sort()
          .map(async (f) => [f, (await readFile(join(d, f))).toString("hex")]),
      ),
    );
  // A 4 KiB ring sends the down_proj slices of both shards through the two-pass path together.
  for (const bufferBytes of [4096, 1 << 20]) {
    const got: Record<string, string>[] = [];
    for (const shardsAtOnce of [1, 2]) {
      const out = join(dir, `at-once-${bufferBytes}-${shardsAtOnce}`);
      const { seen } = await patchInto(out, localCheckpointFiles(model), {
        bufferBytes,
        shardsAtOnce,
      });
      assert.deepEqual([...seen].sort(), [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
      ]);
      got.push(await folder(out));
    }
    assert.deepEqual(got[1], got[0]);
  }

  // The second shard's reads fail after a few succeed: the error surfaces, nothing is published.
  const local = localCheckpointFiles(model);
  let reads = 0;
  const failing: CheckpointFiles = {
    ...local,
    async open(name) {
      const src = await local.open(name);
      if (name !== "model-00002-of-00002.safetensors") return src;
      return {
        ...src,
        name: src.name,
        size: src.size,
        async read(offset, length, into, signal) {
          if (++reads > 3) throw new Error("disk went away");
          return src.read(offset, length, into, signal);
        },
        close: () => src.close(),
      };
    },
  };
  await assert.rejects(
    patchInto(join(dir, "at-once-failing"), failing, { bufferBytes: 4096, shardsAtOnce: 2 }),
    /disk went away/,
  );
  assert.ok(reads > 3);
  assert.deepEqual(await leftovers(dir, "at-once-failing"), []);
  // A store-like output that takes one file at a time refuses more.
  const ck = await loadCheckpoint(local);
  const one = { ...(await createLocalOutput(join(dir, "at-once-one"))), concurrentFiles: false };
  await assert.rejects(
    patchCheckpoint(ck, buildPlan(ck, directions), one, { shardsAtOnce: 2 }).next(),
    /takes one file at a time; shards at once must be 1/,
  );
  assert.deepEqual(await leftovers(dir, "at-once-one"), []);
});
