/**
 * `abl bench run`: runs an agent through a Terminal-Bench-format dataset in sandboxed
 * environments and writes trial records to a folder or an s3:// prefix, with live progress.
 * Re-running the same command resumes: finished trials (their result.json) are skipped.
 */
import { createHash } from "node:crypto";
import { homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  type Agent,
  createDockerEnvironment,
  createKubernetesEnvironment,
  createLlmClient,
  createLocalEnvironment,
  createNopAgent,
  createOracleAgent,
  createTerminusAgent,
  type EnvironmentFactory,
  KeyedSemaphore,
  LOCAL_TASKS_DIR,
  loadDataset,
  runSuite,
  type Sampling,
  type SuiteEvent,
  type SuiteVariant,
  type TrialResult,
} from "@abl/bench";
import { openStore, s3FromEnv } from "@abl/store";
import { type Command, UsageError } from "../command.ts";

const USAGE = `usage: abl bench run [--dataset <dir|git-url#commit[:subdir]>] [--agent NAME]
                     [--endpoint URL --model NAME | --variant NAME=URL@MODEL ...] [options]

Runs every (variant, task, replica) trial and writes records (config.json, result.json,
agent/ trajectory, verifier/ files) under OUT/runs/<run-id>/trials/. Re-running resumes.

options:
  --dataset SRC          task folder(s), or a git URL pinned to a commit (default: the shipped
                         offline task set)
  --tasks a,b            only these task ids
  --agent NAME           terminus-json (default), terminus-xml, oracle or nop
  --endpoint URL         OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1
  --model NAME           model name sent to the endpoint
  --variant N=URL@MODEL  one arm; repeat to compare arms (replaces --endpoint/--model)
  --replicas K           trials per task and variant (default 1)
  --concurrency C        trials at once (default 4)
  --endpoint-concurrency trials at once per endpoint (default: --concurrency)
  --max-in-flight N      LLM requests in flight per endpoint (default 8)
  --env KIND             local (default; bubblewrap + tmux), docker, or kubernetes
  --namespace NS         kubernetes namespace (default abl-bench)
  --out DIR|s3://...     where records go (default ./bench-out; S3 uses ABL_S3_ENDPOINT,
                         ABL_S3_ACCESS_KEY, ABL_S3_SECRET_KEY)
  --run-id ID            run name (default: derived from dataset, agent and variants)
  --attempts N           attempts per trial for environment/LLM errors (default 3)
  --temperature T        sampling temperature (default 0.7, as in TB2.0 leaderboard runs)
  --max-tokens N         extension: max_tokens per reply (upstream sends none)
  --max-turns N          extension: cap on agent turns (upstream has none)
  --accept-split-json    extension: take a later JSON object carrying commands
  --context-limit N      model context window in tokens (enables proactive summarization)
  --timeout-multiplier X multiply agent and verifier timeouts (default 1; recorded)
  --cache-dir DIR        where git datasets are fetched (default ~/.cache/abl)`;

function int(name: string, v: string | undefined, def: number, min = 1): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${v}"`);
  return n;
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new UsageError(`--${name} must be a non-negative number, got "${v}"`);
  return n;
}

function parseVariant(text: string): { name: string; endpoint: string; model: string } {
  const m = /^([^=]+)=(.+)@([^@]+)$/.exec(text);
  if (!m) throw new UsageError(`--variant "${text}" must look like NAME=URL@MODEL`);
  return { name: m[1]!, endpoint: m[2]!, model: m[3]! };
}

/** One progress line: counts so far and the last finished trial. */
function progressLine(
  counts: Record<string, number>,
  done: number,
  total: number,
  running: number,
  last?: TrialResult,
): string {
  const parts = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  const tail = last
    ? ` | ${last.taskId}/${last.variant}#${last.replica}: ${last.outcome} (${last.timings.totalSec.toFixed(1)} s, ${last.turns} turns)`
    : "";
  return `[${done}/${total}] running ${running}${parts ? `, ${parts}` : ""}${tail}`;
}

async function run(argv: string[], signal: AbortSignal): Promise<number> {
  let values: ReturnType<typeof parse>["values"];
  function parse(a: string[]) {
    return parseArgs({
      args: a,
      strict: true,
      allowPositionals: false,
      options: {
        dataset: { type: "string" },
        tasks: { type: "string" },
        agent: { type: "string", default: "terminus-json" },
        endpoint: { type: "string" },
        model: { type: "string" },
        variant: { type: "string", multiple: true },
        replicas: { type: "string" },
        concurrency: { type: "string" },
        "endpoint-concurrency": { type: "string" },
        "max-in-flight": { type: "string" },
        env: { type: "string", default: "local" },
        namespace: { type: "string", default: "abl-bench" },
        out: { type: "string", default: "bench-out" },
        "run-id": { type: "string" },
        attempts: { type: "string" },
        temperature: { type: "string" },
        "max-tokens": { type: "string" },
        "max-turns": { type: "string" },
        "accept-split-json": { type: "boolean", default: false },
        "context-limit": { type: "string" },
        "timeout-multiplier": { type: "string" },
        "cache-dir": { type: "string" },
      },
    });
  }
  try {
    values = parse(argv).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const agentName = values.agent!;
  if (!["terminus-json", "terminus-xml", "oracle", "nop"].includes(agentName)) {
    throw new UsageError(
      `--agent must be terminus-json, terminus-xml, oracle or nop, got "${agentName}"`,
    );
  }
  const envKind = values.env!;
  if (!["local", "docker", "kubernetes"].includes(envKind)) {
    throw new UsageError(`--env must be local, docker or kubernetes, got "${envKind}"`);
  }
  const replicas = int("replicas", values.replicas, 1);
  const concurrency = int("concurrency", values.concurrency, 4);
  const epConcurrency = int("endpoint-concurrency", values["endpoint-concurrency"], concurrency);
  const maxInFlight = int("max-in-flight", values["max-in-flight"], 8);
  const attempts = int("attempts", values.attempts, 3);
  const temperature = num("temperature", values.temperature) ?? 0.7;
  const maxTokens =
    values["max-tokens"] === undefined ? undefined : int("max-tokens", values["max-tokens"], 0);
  const maxTurns =
    values["max-turns"] === undefined ? undefined : int("max-turns", values["max-turns"], 0);
  const contextLimit =
    values["context-limit"] === undefined
      ? undefined
      : int("context-limit", values["context-limit"], 0);
  const multiplier = num("timeout-multiplier", values["timeout-multiplier"]) ?? 1;
  if (multiplier <= 0) throw new UsageError("--timeout-multiplier must be above 0");

  const usesModel = agentName.startsWith("terminus");
  let arms: { name: string; endpoint: string; model: string }[];
  if (values.variant && values.variant.length > 0) {
    if (values.endpoint || values.model)
      throw new UsageError("use either --variant or --endpoint/--model, not both");
    arms = values.variant.map(parseVariant);
  } else if (usesModel) {
    if (!values.endpoint || !values.model)
      throw new UsageError(`--agent ${agentName} needs --endpoint and --model (or --variant)`);
    arms = [{ name: "default", endpoint: values.endpoint, model: values.model }];
  } else arms = [{ name: agentName, endpoint: "", model: "" }];

  const inFlight = new KeyedSemaphore(maxInFlight);
  const sampling: Sampling = {
    temperature,
    ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
  };
  const variants: SuiteVariant[] = arms.map((a) => {
    let agent: Agent;
    if (agentName === "oracle") agent = createOracleAgent();
    else if (agentName === "nop") agent = createNopAgent();
    else {
      const llm = createLlmClient({ endpoint: a.endpoint, model: a.model, sampling, inFlight });
      agent = createTerminusAgent({
        format: agentName === "terminus-xml" ? "xml" : "json",
        llm,
        ...(values["accept-split-json"] ? { acceptSplitJson: true } : {}),
        ...(maxTurns === undefined ? {} : { maxTurns }),
        ...(contextLimit === undefined ? {} : { contextLimitTokens: contextLimit }),
      });
    }
    return { name: a.name, agent };
  });

  const datasetText = values.dataset ?? LOCAL_TASKS_DIR;
  const only = values.tasks
    ? values.tasks
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
    : undefined;
  const { tasks } = await loadDataset(datasetText, {
    cacheDir: values["cache-dir"] ?? join(homedir(), ".cache", "abl"),
    signal,
    ...(only ? { only } : {}),
  });
  const runId =
    values["run-id"] ??
    `bench-${createHash("sha256")
      .update(
        JSON.stringify({
          datasetText,
          agentName,
          arms,
          sampling,
          maxTurns,
          envKind,
          multiplier,
          accept: values["accept-split-json"],
        }),
      )
      .digest("hex")
      .slice(0, 12)}`;

  let envFactory: EnvironmentFactory;
  if (envKind === "local") envFactory = (t, id) => createLocalEnvironment(t, id);
  else if (envKind === "docker") envFactory = (t, id) => createDockerEnvironment(t, id);
  else {
    const k8s = await import("@kubernetes/client-node");
    const kc = new k8s.KubeConfig();
    kc.loadFromDefault();
    // The run label lets a janitor find pods a crashed runner left behind.
    const labels = { "abl.dev/run": runId.slice(0, 63) };
    envFactory = (t, id) =>
      createKubernetesEnvironment(t, id, { kubeConfig: kc, namespace: values.namespace!, labels });
  }

  const out = values.out!;
  const s3 = s3FromEnv(process.env);
  if (out.startsWith("s3://") && !s3)
    throw new UsageError(
      `--out ${out} needs ABL_S3_ENDPOINT, ABL_S3_ACCESS_KEY and ABL_S3_SECRET_KEY`,
    );
  const store = openStore(out, s3);

  const tty = process.stderr.isTTY === true;
  process.stderr.write(
    `abl bench: run ${runId}: ${tasks.length} tasks × ${variants.length} variants × ${replicas} replicas, env ${envKind}, records in ${store.location}\n`,
  );
  const counts: Record<string, number> = {};
  let running = 0;
  let done = 0;
  let total = 0;
  const gen = runSuite({
    runId,
    tasks,
    variants,
    replicas,
    store,
    envFactory,
    concurrency,
    perEndpointConcurrency: epConcurrency,
    maxAttempts: attempts,
    agentTimeoutMultiplier: multiplier,
    verifierTimeoutMultiplier: multiplier,
    configExtra: { dataset: datasetText, env: envKind },
    signal,
  });
  const show = (e: SuiteEvent) => {
    if (e.type === "planned") {
      total = e.total;
      done = e.alreadyDone;
      if (e.alreadyDone > 0)
        process.stderr.write(`resuming: ${e.alreadyDone} of ${e.total} trials already finished\n`);
      return;
    }
    if (e.type === "trial_skipped") {
      counts[e.result.outcome] = (counts[e.result.outcome] ?? 0) + 1;
      return;
    }
    if (e.type === "trial_started") running++;
    let last: TrialResult | undefined;
    if (e.type === "trial_finished") {
      running--;
      done = e.done;
      last = e.result;
      counts[e.result.outcome] = (counts[e.result.outcome] ?? 0) + 1;
    }
    if (e.type === "trial_event" && e.event.type === "attempt_failed") {
      process.stderr.write(
        `${tty ? "\r\x1b[K" : ""}retrying ${e.event.trialId} after attempt ${e.event.attempt}: ${e.event.outcome}: ${e.event.detail.slice(0, 200)}\n`,
      );
    }
    const line = progressLine(counts, done, total, running, last);
    if (tty) process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`);
    else if (e.type === "trial_finished") process.stderr.write(`${line}\n`);
  };
  let summary: Awaited<ReturnType<typeof gen.next>>;
  for (;;) {
    summary = await gen.next();
    if (summary.done) break;
    show(summary.value);
  }
  if (tty) process.stderr.write("\n");
  const s = summary.value;
  console.log(`run ${runId}: ${s.total} trials (${s.skipped} resumed)`);
  console.log("variant\ttrials\tscored\tpassed\tmean_reward\toutcomes");
  for (const [name, v] of Object.entries(s.byVariant)) {
    const oc = Object.entries(v.outcomes)
      .map(([k, n]) => `${k}=${n}`)
      .join(",");
    console.log(
      `${name}\t${v.trials}\t${v.scored}\t${v.passed}\t${v.meanReward.toFixed(3)}\t${oc}`,
    );
  }
  return 0;
}

/** `abl bench run`. */
export const benchRunCommand: Command = {
  name: ["bench", "run"],
  summary: "run an agent through Terminal-Bench tasks in sandboxes and record every trial",
  usage: USAGE,
  run,
};
