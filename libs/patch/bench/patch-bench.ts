/**
 * `npm run bench:patch`: times patching a synthetic Qwen3-4B-shaped bf16 checkpoint (~8 GB, 3
 * shards, tied embeddings) side by side with `cp -r` and the PyTorch baseline
 * (../shared/baselines/torch_patch.py, plain and with glibc huge pages), then `abl patch` folder →
 * folder and S3 → S3 (MinIO). Prints a table of seconds, ratios and peak RSS.
 *
 * Runs warm: the input is read once before timing so every tool starts from the page cache
 * (see ../shared/reference/machine.md). Everything lives under a temp folder that is deleted at
 * the end. Flags: --layers N (default 36, the real depth; fewer for a quick run), --reps N
 * (default 3: the local tools run in turns, N times each, and the table shows medians, because
 * page-cache writes on these VMs vary run to run by up to 2×), --keep, --no-s3 (skip MinIO),
 * --no-torch (skip the PyTorch baseline, for quick looks at abl against `cp`).
 *
 * Besides `cp -r`, the table has `cp -r + sha256`: the copy followed by `openssl dgst -sha256` of
 * the copied shards, the least any tool pays that, like `abl patch`, records the sha256 of every
 * file it writes.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createS3Store } from "@abl/store";
import {
  createFileSink,
  createSafetensorsWriter,
  encodeShardIndex,
  type TensorSpec,
} from "@abl/tensor";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const BASELINE = join(ROOT, "../shared/baselines/torch_patch.py");

/** Qwen3-4B dimensions. */
const Q = { hidden: 2560, inter: 9728, heads: 32, kv: 8, headDim: 128, vocab: 151936 };
/** Size of the random pattern buffer the generator writes repeatedly. */
const PATTERN_BYTES = 32 * 1024 * 1024;

function qwen3Specs(layers: number): TensorSpec[] {
  const { hidden: h, inter, heads, kv, headDim: d, vocab } = Q;
  const s: TensorSpec[] = [{ name: "model.embed_tokens.weight", dtype: "BF16", shape: [vocab, h] }];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    s.push(
      { name: `${p}input_layernorm.weight`, dtype: "BF16", shape: [h] },
      { name: `${p}self_attn.q_proj.weight`, dtype: "BF16", shape: [heads * d, h] },
      { name: `${p}self_attn.k_proj.weight`, dtype: "BF16", shape: [kv * d, h] },
      { name: `${p}self_attn.v_proj.weight`, dtype: "BF16", shape: [kv * d, h] },
      { name: `${p}self_attn.o_proj.weight`, dtype: "BF16", shape: [h, heads * d] },
      { name: `${p}self_attn.q_norm.weight`, dtype: "BF16", shape: [d] },
      { name: `${p}self_attn.k_norm.weight`, dtype: "BF16", shape: [d] },
      { name: `${p}post_attention_layernorm.weight`, dtype: "BF16", shape: [h] },
      { name: `${p}mlp.gate_proj.weight`, dtype: "BF16", shape: [inter, h] },
      { name: `${p}mlp.up_proj.weight`, dtype: "BF16", shape: [inter, h] },
      { name: `${p}mlp.down_proj.weight`, dtype: "BF16", shape: [h, inter] },
    );
  }
  s.push({ name: "model.norm.weight", dtype: "BF16", shape: [h] });
  return s;
}

/** Random bf16 values of magnitude ~0.002–0.06 with random signs (xorshift32, seeded). */
function pattern(): Uint8Array {
  const u16 = new Uint16Array(PATTERN_BYTES / 2);
  let x = 0x9e3779b9;
  for (let i = 0; i < u16.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const sign = (x >>> 31) << 15;
    const exp = 118 + ((x >>> 24) & 3); // 2^-9 .. 2^-6
    u16[i] = sign | (exp << 7) | (x & 0x7f);
  }
  return new Uint8Array(u16.buffer);
}

async function generate(dir: string, layers: number): Promise<number> {
  await mkdir(dir, { recursive: true });
  const specs = qwen3Specs(layers);
  const bytesOf = (s: TensorSpec) => s.shape.reduce((a, b) => a * b, 1) * 2;
  const total = specs.reduce((a, s) => a + bytesOf(s), 0);
  const shards: TensorSpec[][] = [[], [], []];
  let acc = 0;
  for (const s of specs) {
    shards[Math.min(2, Math.floor((acc / total) * 3))]!.push(s);
    acc += bytesOf(s);
  }
  const buf = pattern();
  const map = new Map<string, string>();
  for (let i = 0; i < 3; i++) {
    const file = `model-0000${i + 1}-of-00003.safetensors`;
    const w = await createSafetensorsWriter(
      await createFileSink(join(dir, file), { durable: false }),
      shards[i]!,
      {
        format: "pt",
      },
    );
    let off = 0;
    for (const s of shards[i]!) {
      let left = bytesOf(s);
      while (left > 0) {
        const n = Math.min(left, buf.byteLength - off);
        await w.write(buf.subarray(off, off + n));
        left -= n;
        off = (off + n) % buf.byteLength;
        // Keep every write 2-byte aligned in the pattern.
        off -= off % 2;
      }
      map.set(s.name, file);
    }
    await w.finish();
  }
  await writeFile(join(dir, "model.safetensors.index.json"), encodeShardIndex(map, total));
  const config = {
    architectures: ["Qwen3ForCausalLM"],
    model_type: "qwen3",
    hidden_size: Q.hidden,
    intermediate_size: Q.inter,
    num_hidden_layers: layers,
    num_attention_heads: Q.heads,
    num_key_value_heads: Q.kv,
    head_dim: Q.headDim,
    vocab_size: Q.vocab,
    tie_word_embeddings: true,
    torch_dtype: "bfloat16",
  };
  await writeFile(join(dir, "config.json"), JSON.stringify(config, null, 2));
  await writeFile(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: 151645 }));
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify({ model_max_length: 40960 }));
  return total;
}

const T0 = performance.now();
function log(msg: string): void {
  console.error(`[${((performance.now() - T0) / 1000).toFixed(1)} s] ${msg}`);
}

async function folderBytes(dir: string): Promise<number> {
  let n = 0;
  for (const f of await readdir(dir)) n += (await stat(join(dir, f))).size;
  return n;
}

async function warm(dir: string): Promise<void> {
  for (const f of await readdir(dir)) {
    for await (const _ of createReadStream(join(dir, f), { highWaterMark: 8 << 20 })) {
      // read only
    }
  }
}

interface Run {
  wall: number;
  stdout: string;
  peakRssMiB: number | undefined;
}

/** Runs a command; peak RSS comes from GNU time when present (`/usr/bin/time -f %M`). */
async function timed(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Run> {
  const hasTime = await stat("/usr/bin/time").then(
    () => true,
    () => false,
  );
  const argv = hasTime ? ["-f", "ABL_MAXRSS_KB=%M", cmd, ...args] : args;
  const bin = hasTime ? "/usr/bin/time" : cmd;
  const t0 = performance.now();
  const child = spawn(bin, argv, { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-20000);
  });
  log(`running ${cmd} ${args.slice(0, 4).join(" ")} …`);
  const code = await new Promise<number>((r) => child.on("close", (c) => r(c ?? 1)));
  const wall = (performance.now() - t0) / 1000;
  log(`… ${wall.toFixed(2)} s`);
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${code}):\n${stderr}`);
  const m = /ABL_MAXRSS_KB=(\d+)/.exec(stderr);
  return { wall, stdout, peakRssMiB: m ? Math.round(Number(m[1]) / 1024) : undefined };
}

/** Share of the bytes `abl patch --json` reports as written with direct I/O in place. */
function directShare(j: { io_bytes?: { direct: number; staged: number; buffered: number } }) {
  const io = j.io_bytes;
  if (!io) return "?";
  return `${((100 * io.direct) / (io.direct + io.staged + io.buffered)).toFixed(1)} %`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      layers: { type: "string" },
      keep: { type: "boolean" },
      "no-s3": { type: "boolean" },
      "no-torch": { type: "boolean" },
      reps: { type: "string" },
    },
  });
  const layers = Number(values.layers ?? 36);
  const reps = Number(values.reps ?? 3);
  if (!Number.isInteger(reps) || reps < 1)
    throw new Error(`--reps must be ≥ 1, got ${values.reps}`);
  const work = await mkdtemp(join(tmpdir(), "abl-patch-bench-"));
  const model = join(work, "model");
  const direction = join(work, "direction.f32");
  const rows: { tool: string; wall: number; rss: number | undefined; note: string }[] = [];
  const record = (r: (typeof rows)[number]) => {
    rows.push(r);
    log(`RESULT ${r.tool}: ${r.wall.toFixed(2)} s, peak RSS ${r.rss ?? "?"} MiB, ${r.note}`);
  };
  /** Time for freed page-cache pages to settle between runs (see the header comment). */
  const settle = () => new Promise((r) => setTimeout(r, 3000));
  let s3:
    | { stop(): Promise<void>; endpoint: string; accessKey: string; secretKey: string }
    | undefined;
  try {
    console.error(
      `generating a Qwen3-4B-shaped bf16 checkpoint with ${layers} layers in ${model} …`,
    );
    await generate(model, layers);
    const dirBytes = new Float32Array(Q.hidden).map((_, i) => Math.sin(i * 0.37) + 0.1);
    await writeFile(direction, new Uint8Array(dirBytes.buffer));
    const size = await folderBytes(model);
    log(`${(size / 1e9).toFixed(3)} GB; warming the page cache …`);
    await warm(model);

    const out = (name: string) => join(work, name);
    const abl = [
      "--import",
      "tsx",
      join(ROOT, "cli/src/main.ts"),
      "patch",
      "--direction",
      direction,
      "--json",
    ];
    const shards = (await readdir(model)).filter((f) => f.endsWith(".safetensors"));
    for (let rep = 0; rep < reps; rep++) {
      const cp = await timed("cp", ["-r", model, out("cp")]);
      record({ tool: "cp -r", wall: cp.wall, rss: cp.peakRssMiB, note: "page cache, no sync" });
      await rm(out("cp"), { recursive: true });
      await settle();

      const hashed = await timed("sh", [
        "-c",
        `cp -r "$0" "$1" && cd "$1" && openssl dgst -sha256 ${shards.join(" ")} > /dev/null`,
        model,
        out("cp"),
      ]);
      record({
        tool: "cp -r + sha256",
        wall: hashed.wall,
        rss: hashed.peakRssMiB,
        note: "cp, then openssl sha256 of the shards",
      });
      await rm(out("cp"), { recursive: true });
      await settle();

      const local = await timed(process.execPath, [...abl, "--model", model, "--out", out("abl")]);
      const lj = JSON.parse(local.stdout.trim().split("\n").pop()!);
      record({
        tool: "abl patch dir→dir",
        wall: local.wall,
        rss: local.peakRssMiB ?? lj.peak_rss_mib,
        note: `leakage ≤ ${lj.max_leakage.toExponential(1)}, writes ${(lj.bytes / 1e9).toFixed(2)} GB, ${directShare(lj)} direct I/O from its own memory`,
      });
      await rm(out("abl"), { recursive: true });
      await settle();
    }

    let minio: typeof import("@abl/e2e/servers") | undefined;
    try {
      minio = await import("@abl/e2e/servers");
      minio.findBinary("minio", "ABL_MINIO");
    } catch {
      minio = undefined;
    }
    if (minio && !values["no-s3"]) {
      s3 = await minio.startS3();
      const store = createS3Store({
        endpoint: s3.endpoint,
        accessKey: s3.accessKey,
        secretKey: s3.secretKey,
        bucket: "bench",
      });
      log("uploading the model to MinIO (not timed) …");
      for (const f of await readdir(model)) {
        const st = await stat(join(model, f));
        // Uploading with the sha256 known makes a direct PUT (no staging copy).
        const hash = createHash("sha256");
        for await (const c of createReadStream(join(model, f), { highWaterMark: 8 << 20 }))
          hash.update(c as Buffer);
        await store.put(
          `models/in/${f}`,
          createReadStream(join(model, f), { highWaterMark: 8 << 20 }) as AsyncIterable<Uint8Array>,
          { size: st.size, sha256: hash.digest("hex") },
        );
      }
      const env = {
        ...process.env,
        ABL_S3_ENDPOINT: s3.endpoint,
        ABL_S3_ACCESS_KEY: s3.accessKey,
        ABL_S3_SECRET_KEY: s3.secretKey,
      };
      const r = await timed(
        process.execPath,
        [...abl, "--model", "s3://bench/models/in", "--out", "s3://bench/models/out"],
        env,
      );
      const j = JSON.parse(r.stdout.trim().split("\n").pop()!);
      record({
        tool: "abl patch S3→S3",
        wall: r.wall,
        rss: r.peakRssMiB ?? j.peak_rss_mib,
        note: `MinIO on loopback, inner ${j.wall_s} s`,
      });
    } else {
      record({
        tool: "abl patch S3→S3",
        wall: Number.NaN,
        rss: undefined,
        note: values["no-s3"] ? "not run (--no-s3)" : "not run: no MinIO binary",
      });
    }

    // torch last: it is the slowest, and a shared machine may cut a long run short.
    for (let rep = 0; rep < (values["no-torch"] ? 0 : reps); rep++) {
      for (const [label, env] of [
        ["torch_patch.py", process.env],
        ["torch_patch.py hugetlb=1", { ...process.env, GLIBC_TUNABLES: "glibc.malloc.hugetlb=1" }],
      ] as const) {
        const r = await timed("python3", [BASELINE, model, direction, out("torch")], env);
        const j = JSON.parse(r.stdout.trim().split("\n").pop()!);
        record({
          tool: label,
          wall: r.wall,
          rss: r.peakRssMiB ?? j.peak_rss_mib,
          note: `torch ${j.torch}`,
        });
        await rm(out("torch"), { recursive: true });
        await settle();
      }
    }

    const median = (xs: number[]) => {
      const v = [...xs].sort((a, b) => a - b);
      const m = v.length >> 1;
      return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
    };
    const tools = [...new Set(rows.map((r) => r.tool))];
    const summary = tools.map((tool) => {
      const runs = rows.filter((r) => r.tool === tool);
      const walls = runs.map((r) => r.wall);
      const rss = runs.map((r) => r.rss).filter((x): x is number => x !== undefined);
      return {
        tool,
        wall: median(walls),
        range:
          walls.length > 1
            ? `${Math.min(...walls).toFixed(1)}–${Math.max(...walls).toFixed(1)}`
            : "",
        runs: walls.length,
        rss: rss.length ? Math.max(...rss) : undefined,
        note: runs[runs.length - 1]!.note,
      };
    });
    const cpWall = summary.find((r) => r.tool === "cp -r")!.wall;
    const torch = summary.filter((r) => r.tool.startsWith("torch")).map((r) => r.wall);
    const bestTorch = torch.length > 0 ? Math.min(...torch) : Number.NaN;
    console.log(
      `\npatch benchmark: ${(size / 1e9).toFixed(3)} GB, ${layers} layers, warm page cache, 2-vCPU VM, medians of ${reps} turns\n`,
    );
    /** Two decimals; a dash for what was not run. */
    const num = (x: number) => (Number.isNaN(x) ? "—" : x.toFixed(2));
    console.log("| tool | median s | range s | × cp | × best torch | peak RSS MiB | note |");
    console.log("|---|---:|---:|---:|---:|---:|---|");
    for (const r of summary) {
      console.log(
        `| ${r.tool} | ${num(r.wall)} | ${r.range} | ${num(r.wall / cpWall)} | ${num(r.wall / bestTorch)} | ${r.rss ?? "?"} | ${r.note} |`,
      );
    }
  } finally {
    await s3?.stop();
    if (!values.keep) await rm(work, { recursive: true, force: true });
  }
}

await main();
