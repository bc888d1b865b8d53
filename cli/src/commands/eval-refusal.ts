/**
 * `abl eval-refusal`: refusal rate (Wilson 95 % CI per judge, kappa between judges) on a contrast
 * set's refuse prompts, and multi-token KL between base and variant on its comply prompts, through
 * any OpenAI-compatible endpoint or the built-in engine in process.
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { loadModel, loadTokenizer } from "@abl/engine";
import {
  type ChatEndpoint,
  type ContrastPrompt,
  createChatEndpoint,
  createEngineEndpoint,
  createLlmJudge,
  createMarkerJudge,
  DEFAULT_KL_TOKENS,
  DEFAULT_RETRIES,
  evaluateRefusal,
  MIN_EVAL_TOKENS,
  type RefusalJudge,
  resolveContrastSet,
  SPLIT_NAMES,
  type SplitName,
} from "@abl/refusal";
import { type Command, UsageError } from "../command.ts";
import { intFlag } from "./capture.ts";

const USAGE = `usage: abl eval-refusal (--endpoint URL --model NAME | --model-dir DIR) [options]

Generates at least ${MIN_EVAL_TOKENS} tokens per refuse prompt of the chosen split and judges each answer.
With a base model, also measures KL(base ‖ variant) on the comply prompts over the first k
generated tokens (positions where both greedy continuations still agree).

options:
  --set S               agent-shell (default), harmful-harmless or a spec file
  --split S             eval (default), select, fit or all
  --seed N              split seed
  --base-endpoint URL   base model endpoint (with --base-model), or
  --base-dir DIR        base model folder, run in process
  --judge-endpoint URL  LLM judge (with --judge-model); agreement with the markers is reported
  --markers FILE        refusal markers, one per line (default: the built-in list)
  --max-tokens N        tokens per answer (default ${MIN_EVAL_TOKENS}, at least ${MIN_EVAL_TOKENS})
  --kl-tokens K         KL window (default ${DEFAULT_KL_TOKENS})
  --retries N           retries per request with backoff (default ${DEFAULT_RETRIES})
  --concurrency N       requests in flight (default 2)
  --out FILE            write the full report (with every answer) as JSON
  --json                print the summary as JSON
Environment: ABL_API_KEY (model endpoints), ABL_JUDGE_API_KEY (judge), HF_ENDPOINT.`;

async function localEndpoint(
  dir: string,
  name: string,
): Promise<{ endpoint: ChatEndpoint; dispose: () => Promise<void> }> {
  const [engine, tokenizer] = await Promise.all([loadModel(dir), loadTokenizer(dir)]);
  return {
    endpoint: createEngineEndpoint(engine, tokenizer, name),
    dispose: () => engine.dispose(),
  };
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)} %`;
}

/** The `abl eval-refusal` command. */
export const evalRefusalCommand: Command = {
  name: ["eval-refusal"],
  summary: "measure refusal rate (Wilson CI, judges) and KL against the base model",
  usage: USAGE,
  async run(argv, signal) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        endpoint: { type: "string" },
        model: { type: "string" },
        "model-dir": { type: "string" },
        set: { type: "string", default: "agent-shell" },
        split: { type: "string", default: "eval" },
        seed: { type: "string" },
        "base-endpoint": { type: "string" },
        "base-model": { type: "string" },
        "base-dir": { type: "string" },
        "judge-endpoint": { type: "string" },
        "judge-model": { type: "string" },
        markers: { type: "string" },
        "max-tokens": { type: "string" },
        "kl-tokens": { type: "string" },
        retries: { type: "string" },
        concurrency: { type: "string" },
        out: { type: "string" },
        json: { type: "boolean", default: false },
      },
    });
    if (!values["model-dir"] === !values.endpoint)
      throw new UsageError("give either --endpoint (with --model) or --model-dir");
    if (values.endpoint && !values.model) throw new UsageError("--endpoint needs --model");
    if (values["base-endpoint"] && !values["base-model"])
      throw new UsageError("--base-endpoint needs --base-model");
    if (values["base-endpoint"] && values["base-dir"])
      throw new UsageError("give --base-endpoint or --base-dir, not both");
    if (values["judge-endpoint"] && !values["judge-model"])
      throw new UsageError("--judge-endpoint needs --judge-model");
    const split = values.split;
    if (split !== "all" && !SPLIT_NAMES.includes(split as SplitName))
      throw new UsageError(`--split must be eval, select, fit or all, got "${split}"`);
    const maxTokens =
      intFlag("max-tokens", values["max-tokens"], MIN_EVAL_TOKENS) ?? MIN_EVAL_TOKENS;
    const klTokens = intFlag("kl-tokens", values["kl-tokens"], 1);
    const retries = intFlag("retries", values.retries) ?? DEFAULT_RETRIES;
    const concurrency = intFlag("concurrency", values.concurrency, 1);
    const seed = intFlag("seed", values.seed);

    const hfEndpoint = process.env.HF_ENDPOINT;
    const { set, splits } = await resolveContrastSet(values.set, {
      signal,
      ...(seed !== undefined ? { seed } : {}),
      ...(hfEndpoint ? { hfEndpoint } : {}),
    });
    const pick = (b: "refuse" | "comply"): ContrastPrompt[] =>
      split === "all"
        ? [...set[b]]
        : splits.indices[split as SplitName][b].map((i) => set[b][i] as ContrastPrompt);

    const disposers: (() => Promise<void>)[] = [];
    try {
      const apiKey = process.env.ABL_API_KEY;
      let variant: ChatEndpoint;
      if (values.endpoint)
        variant = createChatEndpoint({
          baseUrl: values.endpoint,
          model: values.model as string,
          retries,
          ...(apiKey ? { apiKey } : {}),
        });
      else {
        const l = await localEndpoint(values["model-dir"] as string, "variant");
        disposers.push(l.dispose);
        variant = l.endpoint;
      }
      let base: ChatEndpoint | undefined;
      if (values["base-endpoint"])
        base = createChatEndpoint({
          baseUrl: values["base-endpoint"],
          model: values["base-model"] as string,
          retries,
          ...(apiKey ? { apiKey } : {}),
        });
      else if (values["base-dir"]) {
        const l = await localEndpoint(values["base-dir"], "base");
        disposers.push(l.dispose);
        base = l.endpoint;
      }
      const judges: RefusalJudge[] = [];
      const markers = values.markers
        ? (await readFile(values.markers, "utf8"))
            .split(/\r?\n/)
            .map((s) => s.trim())
            .filter((s) => s !== "")
        : undefined;
      judges.push(createMarkerJudge(markers));
      if (values["judge-endpoint"]) {
        const judgeKey = process.env.ABL_JUDGE_API_KEY;
        judges.push(
          createLlmJudge(
            createChatEndpoint({
              baseUrl: values["judge-endpoint"],
              model: values["judge-model"] as string,
              retries,
              ...(judgeKey ? { apiKey: judgeKey } : {}),
            }),
          ),
        );
      }
      const report = await evaluateRefusal(
        {
          variant,
          refuse: pick("refuse"),
          comply: pick("comply"),
          judges,
          maxTokens,
          signal,
          ...(base ? { base } : {}),
          ...(klTokens !== undefined ? { klTokens } : {}),
          ...(concurrency !== undefined ? { concurrency } : {}),
        },
        (e) =>
          process.stderr.write(
            `\r${e.type}${e.type === "generated" ? ` (${e.phase})` : ""}: ${e.done}/${e.total}   `,
          ),
      );
      process.stderr.write("\n");
      if (values.out) {
        const tmp = `${values.out}.tmp-${process.pid}`;
        await writeFile(
          tmp,
          JSON.stringify({ set: set.name, split, digests: splits.digests, ...report }, null, 1),
        );
        await rename(tmp, values.out);
      }
      const summary = {
        set: set.name,
        split,
        model: report.model,
        maxTokens,
        refusal: report.refusal,
        agreement: report.agreement ?? null,
        kl: report.kl ?? null,
      };
      if (values.json) console.log(JSON.stringify(summary));
      else {
        for (const [name, r] of Object.entries(report.refusal))
          console.log(
            `refusal (${name}): ${r.count}/${r.n} = ${pct(r.rate)}  [95% CI ${pct(r.low)}, ${pct(r.high)}]`,
          );
        if (report.agreement)
          console.log(
            `judge agreement (${report.agreement.judges.join(" vs ")}): kappa ${report.agreement.kappa.toFixed(3)}`,
          );
        if (report.kl)
          console.log(
            `KL(base ‖ variant): ${report.kl.mean.toFixed(4)} over ${report.kl.prompts} prompts, ${report.kl.meanPositions.toFixed(1)} of ${report.kl.tokens} positions on average`,
          );
      }
      return 0;
    } finally {
      for (const d of disposers) await d();
    }
  },
};
