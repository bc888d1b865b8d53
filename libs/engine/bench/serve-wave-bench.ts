/**
 * `npm run bench:serve-wave [-- --model DIR] [--trials N] [--prefix-cache-bytes B]`: replays one
 * wave of `abl demo`'s bench against the OpenAI server: N agent trials at once (half on model
 * "base", half on "abliterated", the same weights loaded twice as the demo serves two variants),
 * each 2 turns of max_tokens 96 (the demo's agent flags), turn 1 = a real Terminus prompt
 * recorded from the demo (fixtures/demo-wave.json), turn 2 = turn 1 + the answer + a new
 * terminal screen, as the agent sends it. Prints wall time, prefill vs decode time, mean decode
 * batch, prompt tokens served from the prefix cache, and aggregate generated tokens/s.
 * Greedy (temperature 0) so runs of different engine versions do the same work.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { convertGgufToHf } from "@abl/checkpoint";
import { createOpenAIServer, loadModel, loadTokenizer } from "../src/index.ts";

const DEFAULT_GGUF_DIR = "/root/.cache/abl/smollm2";
const DEFAULT_MODEL_DIR = "/tmp/abl-bench-smollm2-f32";
/** The demo's agent flags (cli/src/commands/demo.ts). */
const MAX_TOKENS = 96;
/** Lines of the synthetic second-turn terminal screen (the demo's screens are 20–40 lines). */
const SCREEN_LINES = 30;

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    trials: { type: "string", default: "12" },
    "prefix-cache-bytes": { type: "string" },
    "max-batch": { type: "string", default: "16" },
  },
  strict: true,
});

async function modelDir(): Promise<string> {
  if (values.model) return values.model;
  if (existsSync(join(DEFAULT_MODEL_DIR, "config.json"))) return DEFAULT_MODEL_DIR;
  const gguf = readdirSync(DEFAULT_GGUF_DIR).find((f) => f.endsWith(".gguf"));
  if (!gguf) throw new Error(`no --model and no GGUF in ${DEFAULT_GGUF_DIR}`);
  await convertGgufToHf(join(DEFAULT_GGUF_DIR, gguf), DEFAULT_MODEL_DIR, { dtype: "f32" });
  return DEFAULT_MODEL_DIR;
}

const dir = await modelDir();
const trials = Number(values.trials);
const tokenizer = await loadTokenizer(dir);
const cacheBytes = values["prefix-cache-bytes"];
const loadOpts = {
  maxPositions: 2048,
  ...(cacheBytes !== undefined ? { prefixCacheBytes: Number(cacheBytes) } : {}),
};
const ids = ["base", "abliterated"];
const engines = await Promise.all(ids.map(() => loadModel(dir, loadOpts)));
const server = createOpenAIServer({
  models: ids.map((id, i) => ({ id, engine: engines[i] as (typeof engines)[number], tokenizer })),
  maxBatch: Number(values["max-batch"]),
  maxQueue: 256,
});
const port = await server.listen(0);
const url = `http://127.0.0.1:${port}/v1/completions`;

const fixture = JSON.parse(
  readFileSync(join(import.meta.dirname, "fixtures", "demo-wave.json"), "utf8"),
) as { prompts: number[][] };
const turn1 = fixture.prompts.map((p) => tokenizer.decode(p, { skipSpecialTokens: false }));

interface Done {
  promptTokens: number;
  completionTokens: number;
  sec: number;
}
async function complete(model: string, prompt: string): Promise<{ text: string } & Done> {
  const started = performance.now();
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, prompt, max_tokens: MAX_TOKENS, temperature: 0 }),
  });
  const body = (await res.json()) as {
    choices: { text: string }[];
    usage: { prompt_tokens: number; completion_tokens: number };
  };
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${JSON.stringify(body)}`);
  return {
    text: body.choices[0]?.text ?? "",
    promptTokens: body.usage.prompt_tokens,
    completionTokens: body.usage.completion_tokens,
    sec: (performance.now() - started) / 1000,
  };
}

function screen(trial: number): string {
  const lines = [];
  for (let i = 0; i < SCREEN_LINES; i++)
    lines.push(`root@task-${trial}:/app# ls -la /app/data/part-${i}  # ${i * 37 + trial} bytes`);
  return `New Terminal Output:\n${lines.join("\n")}`;
}

const requests: Done[] = [];
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await Promise.all(
  Array.from({ length: trials }, async (_, t) => {
    const model = ids[t % 2] as string;
    const p1 = turn1[Math.floor(t / 2) % turn1.length] as string;
    const r1 = await complete(model, p1);
    requests.push(r1);
    const p2 = `${p1}${r1.text}<|im_end|>\n<|im_start|>user\n${screen(t)}<|im_end|>\n<|im_start|>assistant\n`;
    requests.push(await complete(model, p2));
  }),
);
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
await server.close();
await Promise.all(engines.map((e) => e.dispose()));

const metric = (name: string) =>
  Number(metrics.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? NaN);
const gen = requests.reduce((a, r) => a + r.completionTokens, 0);
const prompt = requests.reduce((a, r) => a + r.promptTokens, 0);
const steps = metric("abl_engine_step_sequences_count");
const rows = metric("abl_engine_step_sequences_sum");
console.log(
  JSON.stringify(
    {
      trials,
      requests: requests.length,
      wallSec: +wall.toFixed(1),
      cpuSec: +((cpu.user + cpu.system) / 1e6).toFixed(1),
      promptTokens: prompt,
      generatedTokens: gen,
      generatedTokensPerSec: +(gen / wall).toFixed(1),
      promptTokensPerRequest: [
        Math.min(...requests.map((r) => r.promptTokens)),
        Math.max(...requests.map((r) => r.promptTokens)),
      ],
      requestSec: {
        min: +Math.min(...requests.map((r) => r.sec)).toFixed(1),
        max: +Math.max(...requests.map((r) => r.sec)).toFixed(1),
      },
      prefillSec: metric("abl_engine_prefill_seconds_total"),
      decodeSec: metric("abl_engine_decode_seconds_total"),
      cachedPromptTokens: metric("abl_engine_prompt_tokens_cached_total"),
      meanStepBatch: +(rows / steps).toFixed(2),
      loadavg: loadavg().map((x) => +x.toFixed(2)),
    },
    null,
    2,
  ),
);
