/**
 * `npm run bench:engine [-- --model DIR] [--repeats N]`: the built-in engine against transformers
 * on torch CPU, side by side in one run, same model folder, same prompts, both warm (one untimed
 * run first), median of N timed runs:
 *   (a) batched prefill with all-layer residual capture at the last prompt token, tokens/s
 *   (b) greedy generation (fixed length, eos ignored) at batch 1 and batch 16, generated tokens/s
 *   peak RSS of each process.
 * Default model: SmolLM2-135M-Instruct converted to f32 safetensors from the GGUF in
 * /root/.cache/abl/smollm2 (converted once into /tmp/abl-bench-smollm2-f32).
 * The torch side is bench/torch_baseline.py (needs pip torch + transformers).
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { convertGgufToHf } from "@abl/checkpoint";
import { drain, loadModel } from "../src/index.ts";

const THREADS = 2;
/** Prefill workload: 16 prompts of 64..124 tokens in one forward pass. */
const PREFILL_PROMPTS = 16;
const PREFILL_BATCH = 16;
/** Generation workloads: prompts of 24..39 tokens, 32 new tokens each. */
const GEN_TOKENS = 32;
const GEN_BATCHES = [1, 16] as const;
const DEFAULT_GGUF_DIR = "/root/.cache/abl/smollm2";
const DEFAULT_MODEL_DIR = "/tmp/abl-bench-smollm2-f32";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    repeats: { type: "string", default: "3" },
    gguf: { type: "string" },
  },
  strict: true,
});
const repeats = Number(values.repeats);

async function modelDir(): Promise<string> {
  if (values.model) return values.model;
  if (existsSync(join(DEFAULT_MODEL_DIR, "config.json"))) return DEFAULT_MODEL_DIR;
  const gguf =
    values.gguf ??
    (existsSync(DEFAULT_GGUF_DIR)
      ? readdirSync(DEFAULT_GGUF_DIR)
          .filter((f) => f.endsWith(".gguf"))
          .map((f) => join(DEFAULT_GGUF_DIR, f))[0]
      : undefined);
  if (!gguf) throw new Error(`no --model and no GGUF in ${DEFAULT_GGUF_DIR}`);
  console.error(`converting ${gguf} → ${DEFAULT_MODEL_DIR} (f32)`);
  await convertGgufToHf(gguf, DEFAULT_MODEL_DIR, { dtype: "f32" });
  return DEFAULT_MODEL_DIR;
}

/** Deterministic token ids (an LCG), the same on both sides because they are passed to Python. */
function prompts(
  count: number,
  len: (i: number) => number,
  seed: number,
  vocab: number,
): number[][] {
  let s = seed;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s;
  };
  return Array.from({ length: count }, (_, i) =>
    Array.from({ length: len(i) }, () => 3 + (next() % (vocab - 3))),
  );
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/**
 * Median wall seconds and median CPU seconds (user+system of the whole process, so all
 * onnxruntime threads). CPU time is the figure that survives a shared, oversubscribed machine.
 */
async function timed(
  fn: () => Promise<unknown>,
): Promise<{ median: number; all: number[]; cpu: number }> {
  await fn();
  const all: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t = performance.now();
    const c = process.cpuUsage();
    await fn();
    all.push((performance.now() - t) / 1000);
    const d = process.cpuUsage(c);
    cpu.push((d.user + d.system) / 1e6);
  }
  return { median: median(all), all, cpu: median(cpu) };
}

function runTorch(job: unknown): Promise<{
  torch: string;
  prefill_s: number;
  prefill_cpu_s: number;
  gen: { s: number; cpu_s: number }[];
  peak_rss_bytes: number;
}> {
  return new Promise((resolve, reject) => {
    const py = spawn("python3", [join(import.meta.dirname, "torch_baseline.py")], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    let out = "";
    py.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    py.on("error", reject);
    py.on("close", (code) => {
      if (code !== 0) reject(new Error(`torch_baseline.py exited with ${code}`));
      else resolve(JSON.parse(out.trim().split("\n").pop() as string));
    });
    py.stdin.end(JSON.stringify(job));
  });
}

const dir = await modelDir();
const engine = await loadModel(dir, { threads: THREADS, maxPositions: 1024 });
const vocab = engine.spec.vocabSize;
const prefillPrompts = prompts(PREFILL_PROMPTS, (i) => 64 + i * 4, 7, vocab);
const prefillTokens = prefillPrompts.reduce((a, p) => a + p.length, 0);
const genSets = GEN_BATCHES.map((b, k) => prompts(b, (i) => 24 + (i % 16), 100 + k, vocab));

const ePrefill = await timed(() =>
  drain(engine.capture({ prompts: prefillPrompts, positions: "last", batchSize: PREFILL_BATCH })),
);
const eGen = [];
for (const set of genSets)
  eGen.push(
    await timed(() =>
      drain(engine.generate({ prompts: set, maxTokens: GEN_TOKENS, ignoreEos: true })),
    ),
  );
const eRss = process.resourceUsage().maxRSS * 1024;
await engine.dispose();
console.error(
  `engine: prefill ${(prefillTokens / ePrefill.median).toFixed(1)} tok/s ${JSON.stringify(ePrefill.all)}; ` +
    GEN_BATCHES.map(
      (b, k) =>
        `gen b${b} ${((b * GEN_TOKENS) / (eGen[k] as { median: number }).median).toFixed(1)} tok/s`,
    ).join("; ") +
    `; running torch…`,
);

const t = await runTorch({
  model: dir,
  threads: THREADS,
  repeats,
  prefill: { prompts: prefillPrompts, batch: PREFILL_BATCH },
  gen: genSets.map((p) => ({ prompts: p, tokens: GEN_TOKENS })),
});

const rows: [string, number, number, number, number][] = [
  [
    "(a) prefill + all-layer capture",
    prefillTokens / ePrefill.median,
    prefillTokens / t.prefill_s,
    prefillTokens / ePrefill.cpu,
    prefillTokens / t.prefill_cpu_s,
  ],
  ...GEN_BATCHES.map((b, k): [string, number, number, number, number] => {
    const e = eGen[k] as { median: number; cpu: number };
    const p = t.gen[k] as { s: number; cpu_s: number };
    const n = b * GEN_TOKENS;
    return [`(b) greedy generation, batch ${b}`, n / e.median, n / p.s, n / e.cpu, n / p.cpu_s];
  }),
];
console.log(`model ${dir}; ${THREADS} threads; median of ${repeats} warm runs; torch ${t.torch}`);
console.log(
  "workload                          engine tok/s  torch tok/s  ratio | per CPU-second: engine  torch  ratio",
);
const f = (x: number, w: number) => x.toFixed(1).padStart(w);
for (const [name, e, p, ec, pc] of rows)
  console.log(
    `${name.padEnd(33)} ${f(e, 12)} ${f(p, 12)} ${(e / p).toFixed(2).padStart(5)}× | ${f(ec, 22)} ${f(pc, 6)} ${(ec / pc).toFixed(2).padStart(5)}×`,
  );
console.log(
  `peak RSS: engine ${(eRss / 2 ** 20).toFixed(0)} MiB, torch ${(t.peak_rss_bytes / 2 ** 20).toFixed(0)} MiB`,
);
console.log(
  `machine load average during the run: ${loadavg()
    .map((x) => x.toFixed(1))
    .join(" ")}`,
);
