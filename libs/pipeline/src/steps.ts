/**
 * The step definitions of a sweep: model import, capture, directions, patch, refusal evaluation,
 * bench and report. Each is a pure function of its params (which carry the digests of its inputs),
 * so its artifact key says exactly what it was computed from. Values that do not change a step's
 * output (server URLs, cache folders) travel in `ctx.runtime`.
 */
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createLlmClient,
  createLocalEnvironment,
  createNopAgent,
  createOracleAgent,
  createTerminusAgent,
  type EnvironmentFactory,
  KeyedSemaphore,
  loadDataset,
  runSuite,
  type SuiteVariant,
  type TrialResult,
} from "@abl/bench";
import { loadCheckpoint, resolveModel, storeCheckpointFiles } from "@abl/checkpoint";
import { loadModelWithTokenizer } from "@abl/engine";
import { buildPlan, createStoreOutput, makeDirections, patchCheckpoint } from "@abl/patch";
import {
  type ContrastSet,
  createBuiltinCapturer,
  createChatEndpoint,
  createLlmJudge,
  createMarkerJudge,
  DEFAULT_REFUSAL_MARKERS,
  type DirectionsMeta,
  directionRow,
  loadContrastSet,
  parseContrastSpec,
  presetSpec,
  type RefusalEvalReport,
  type RefusalJudge,
  readActivations,
  readDirections,
  runCapture,
  runDirections,
  runRefusalEval,
  splitContrastSet,
} from "@abl/refusal";
import {
  buildReport,
  escapeHtml,
  htmlTable,
  masterSummaryCsv,
  type ReportSection,
  renderReportHtml,
  type TrialRecord,
} from "@abl/stats";
import { type ObjectStore, readArtifact, sha256Hex } from "@abl/store";
import type {
  BenchSpec,
  CaptureSpec,
  ConcreteVariant,
  ContrastSpec,
  DirectionsSpec,
  RefusalSpec,
} from "./spec.ts";
import type { StepDefinition } from "./step-runner.ts";

/**
 * The content digest of an artifact: sha256 over its files' names and sha256s, from the manifest.
 * Two artifacts with the same files have the same digest wherever and however they were written.
 */
export async function artifactDigest(store: ObjectStore, prefix: string): Promise<string> {
  const m = await readArtifact(store, prefix);
  if (!m) throw new Error(`no artifact at ${prefix} (no manifest)`);
  return sha256Hex(
    m.files
      .map((f) => `${f.name}:${f.sha256}`)
      .sort()
      .join("\n"),
  );
}

/** A model in the store: its artifact prefix and content digest. */
export interface ModelRef {
  readonly prefix: string;
  readonly digest: string;
}

/**
 * The local folder of a model artifact. The embedded shape keeps the store in a local folder, where
 * an artifact's files are plain files under `<root>/<prefix>`; loading from S3 downloads first.
 */
export async function modelDir(
  store: ObjectStore,
  prefix: string,
  cacheDir: string,
): Promise<string> {
  if (store.kind === "local") return join(store.location, prefix);
  const manifest = await readArtifact(store, prefix);
  if (!manifest) throw new Error(`model ${prefix} has no manifest in ${store.location}`);
  const dir = join(cacheDir, "models", prefix.replaceAll("/", "_"));
  const done = join(dir, ".complete");
  if (await stat(done).catch(() => undefined)) return dir;
  await mkdir(dir, { recursive: true });
  for (const f of manifest.files) {
    const fh = await open(join(dir, f.name), "w");
    try {
      for await (const chunk of store.get(`${prefix}/${f.name}`)) await fh.write(chunk);
    } finally {
      await fh.close();
    }
  }
  await writeFile(done, "");
  return dir;
}

// ---------------------------------------------------------------------------------------------
// model: resolve a folder, GGUF file or Hub id and import it into the store

export interface ModelStepParams {
  readonly source: string;
  /** sha256 of the source's bytes (folder: of its files' names, sizes and hashes). */
  readonly sourceDigest: string;
}
export interface ModelStepResult {
  readonly digest: string;
  readonly architecture: string;
  readonly layers: number;
  readonly hidden: number;
}

/** Imports the model into the store, so every later step reads one content-addressed copy. */
export const modelStep: StepDefinition<ModelStepParams, ModelStepResult> = {
  kind: "model",
  version: 1,
  prefix: "models",
  async *run(p, ctx) {
    const cacheDir = String(ctx.runtime.cacheDir ?? join(tmpdir(), "abl-cache"));
    const dir = await resolveModel(p.source, { cacheDir, signal: ctx.signal });
    const names = (await readdir(dir, { withFileTypes: true }))
      .filter((e) => e.isFile() && !e.name.startsWith("."))
      .map((e) => e.name)
      .sort();
    let done = 0;
    const digests: string[] = [];
    for (const name of names) {
      ctx.signal.throwIfAborted();
      const size = (await stat(join(dir, name))).size;
      const file = await ctx.writer.addFile(
        name,
        createReadStream(join(dir, name), { highWaterMark: 4 << 20 }),
        {
          size,
          signal: ctx.signal,
        },
      );
      digests.push(`${name}:${file.sha256}`);
      yield { done: ++done, total: names.length, unit: "files", message: name };
    }
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    const text = (config.text_config as Record<string, unknown> | undefined) ?? config;
    return {
      digest: sha256Hex(digests.join("\n")),
      architecture: String(
        (config.architectures as string[] | undefined)?.[0] ?? config.model_type,
      ),
      layers: Number(text.num_hidden_layers),
      hidden: Number(text.hidden_size),
    };
  },
};

// ---------------------------------------------------------------------------------------------
// capture

export interface CaptureStepParams {
  readonly model: ModelRef;
  readonly contrast: ContrastSpec;
  readonly capture: CaptureSpec;
}

/** The contrast set and its splits as the spec asks for them (preset or file, limit, seed). */
export async function loadSweepContrast(
  c: ContrastSpec,
): Promise<{ set: ContrastSet; splits: ReturnType<typeof splitContrastSet> }> {
  const spec = c.file
    ? parseContrastSpec(await readFile(c.file, "utf8"))
    : presetSpec(c.preset ?? "agent-shell");
  let set = await loadContrastSet(spec);
  if (c.limit !== undefined) {
    set = { ...set, refuse: set.refuse.slice(0, c.limit), comply: set.comply.slice(0, c.limit) };
  }
  return { set, splits: splitContrastSet(set, c.seed) };
}

export const captureStep: StepDefinition<CaptureStepParams, unknown> = {
  kind: "capture",
  version: 1,
  prefix: "activations",
  async *run(p, ctx) {
    if (p.capture.engine !== "builtin") {
      throw new Error(
        `capture engine "${p.capture.engine}" runs as a separate worker (abl capture --engine transformers); abl run uses the built-in engine`,
      );
    }
    const dir = await modelDir(ctx.store, p.model.prefix, String(ctx.runtime.cacheDir));
    const { set, splits } = await loadSweepContrast(p.contrast);
    const { engine, tokenizer } = await loadModelWithTokenizer(dir, { signal: ctx.signal });
    try {
      const capturer = createBuiltinCapturer({
        engine,
        tokenizer,
        modelDigest: p.model.digest,
        batchSize: p.capture.batchSize,
      });
      const total = set.refuse.length + set.comply.length;
      const gen = runCapture({
        store: ctx.store,
        prefix: ctx.prefix,
        set,
        splits,
        capturer,
        signal: ctx.signal,
      });
      let r = await gen.next();
      while (!r.done) {
        const offset = r.value.bucket === "refuse" ? 0 : set.refuse.length;
        yield { done: offset + r.value.done, total, unit: "prompts", message: r.value.bucket };
        r = await gen.next();
      }
      return r.value;
    } finally {
      await engine.dispose();
    }
  },
};

// ---------------------------------------------------------------------------------------------
// directions

export interface DirectionsStepParams {
  readonly activations: string;
  readonly modelDigest: string;
  readonly directions: DirectionsSpec;
  readonly seed: number;
}

export const directionsStep: StepDefinition<DirectionsStepParams, DirectionsMeta> = {
  kind: "directions",
  version: 1,
  prefix: "directions",
  async *run(p, ctx) {
    if (p.directions.selection === "causal") {
      throw new Error(
        "causal layer selection needs the ablation probe: run `abl directions --select causal`",
      );
    }
    const selection =
      p.directions.selection === "explicit"
        ? { type: "explicit" as const, layer: p.directions.layer ?? 0 }
        : { type: "best-auc" as const };
    const gen = runDirections({
      store: ctx.store,
      activations: p.activations,
      prefix: ctx.prefix,
      method: p.directions.method,
      selection,
      expectModelDigest: p.modelDigest,
      seed: p.seed,
      signal: ctx.signal,
    });
    let r = await gen.next();
    while (!r.done) {
      const e = r.value as { step?: string; done?: number; total?: number };
      yield { done: e.done ?? 0, total: e.total ?? 1, unit: "layers", message: e.step ?? "" };
      r = await gen.next();
    }
    return r.value;
  },
};

// ---------------------------------------------------------------------------------------------
// patch

export interface PatchStepParams {
  readonly model: ModelRef;
  readonly directions: string;
  readonly layer: number;
  readonly scale: number;
  readonly method: "project" | "norm-preserving";
  readonly targets: readonly string[];
}

export const patchStep: StepDefinition<PatchStepParams, unknown> = {
  kind: "patch",
  version: 1,
  prefix: "models",
  async *run(p, ctx) {
    const { directions } = await readDirections(ctx.store, p.directions, ctx.signal);
    if (p.layer < 0 || p.layer >= directions.layers) {
      throw new Error(
        `layer ${p.layer} is out of range: the directions have ${directions.layers} rows (0..${directions.layers - 1})`,
      );
    }
    const row = Float32Array.from(directionRow(directions, p.layer));
    const ck = await loadCheckpoint(storeCheckpointFiles(ctx.store, p.model.prefix), ctx.signal);
    const plan = buildPlan(
      ck,
      makeDirections([row], directions.hidden, `${p.directions}#${p.layer}`),
      {
        targets: p.targets as never,
        method: p.method,
        strength: { type: "constant", value: p.scale },
      },
    );
    const gen = patchCheckpoint(ck, plan, createStoreOutput(ctx.store, ctx.prefix), {
      signal: ctx.signal,
    });
    let total = 1;
    let r = await gen.next();
    while (!r.done) {
      const e = r.value as {
        type: string;
        totalBytes?: number;
        bytesDone?: number;
        bytes?: number;
      };
      if (e.type === "start" && e.totalBytes) total = e.totalBytes;
      const done = e.bytesDone ?? e.bytes;
      if (done !== undefined) yield { done, total, unit: "bytes" };
      r = await gen.next();
    }
    // The patched model's artifact is published by its output folder (manifest last) with the
    // abliteration report inside; the step's result is that manifest's metadata.
    return r.value;
  },
};

// ---------------------------------------------------------------------------------------------
// refusal evaluation

export interface EvalStepParams {
  readonly variant: string;
  readonly model: ModelRef;
  readonly baseModel: ModelRef;
  /** The activations artifact whose prompts and eval split are used. */
  readonly activations: string;
  readonly refusal: RefusalSpec;
}

/** Runtime of the eval step: OpenAI-compatible endpoints serving the variant and the base. */
export interface EvalRuntime {
  readonly variantUrl: string;
  readonly variantModel: string;
  readonly baseUrl: string;
  readonly baseModel: string;
}

export const evalStep: StepDefinition<EvalStepParams, Omit<RefusalEvalReport, "samples">> = {
  kind: "refusal-eval",
  version: 1,
  prefix: "evals",
  async *run(p, ctx) {
    const rt = ctx.runtime as unknown as EvalRuntime;
    const acts = await readActivations(ctx.store, p.activations, { signal: ctx.signal });
    const { set, splits } = acts.prompts;
    const pick = (bucket: "refuse" | "comply") =>
      splits.indices.eval[bucket].slice(0, p.refusal.prompts).map((i) => set[bucket][i]!);
    const judges: RefusalJudge[] = [
      createMarkerJudge(p.refusal.markers ?? DEFAULT_REFUSAL_MARKERS),
    ];
    if (p.refusal.judge) {
      judges.push(
        createLlmJudge(
          createChatEndpoint({ baseUrl: p.refusal.judge.endpoint, model: p.refusal.judge.model }),
        ),
      );
    }
    const variant = createChatEndpoint({ baseUrl: rt.variantUrl, model: rt.variantModel });
    const base = createChatEndpoint({ baseUrl: rt.baseUrl, model: rt.baseModel });
    const gen = runRefusalEval({
      variant,
      base,
      refuse: pick("refuse"),
      comply: pick("comply"),
      judges,
      maxTokens: p.refusal.maxTokens,
      klTokens: p.refusal.klTokens,
      signal: ctx.signal,
    });
    let r = await gen.next();
    while (!r.done) {
      const e = r.value as { done?: number; total?: number; phase?: string; type?: string };
      yield {
        done: e.done ?? 0,
        total: e.total ?? 1,
        unit: "prompts",
        message: e.phase ?? e.type ?? "",
      };
      r = await gen.next();
    }
    const { samples, ...summary } = r.value;
    await ctx.writer.addFile(
      "samples.json",
      new TextEncoder().encode(`${JSON.stringify(samples, null, 2)}\n`),
    );
    return summary;
  },
};

// ---------------------------------------------------------------------------------------------
// bench

export interface BenchStepParams {
  /** Variant name → model digest (or `base` digest); the digests make the key. */
  readonly variants: Readonly<Record<string, string>>;
  readonly bench: BenchSpec;
  /** Digest of every task loaded (id → digest), so a changed task is a different bench. */
  readonly tasks: Readonly<Record<string, string>>;
}

/** Runtime of the bench step: where each variant is served, and folders. */
export interface BenchRuntime {
  readonly endpoints: Readonly<Record<string, { url: string; model: string }>>;
  readonly cacheDir: string;
  readonly datasetDir?: string;
}

export interface BenchStepResult {
  /** Store prefix holding one folder per trial (config.json, result.json, trajectory, verifier/). */
  readonly trials: string;
  readonly total: number;
  readonly byVariant: Readonly<Record<string, { trials: number; passed: number }>>;
}

/**
 * The bench step with trials in `envFactory`'s environments: the bubblewrap sandbox embedded, one
 * pod per trial in the cluster runner. Kind, version and prefix are the same either way, so a
 * bench's key does not depend on where it ran.
 */
export function createBenchStep(
  envFactory: EnvironmentFactory,
): StepDefinition<BenchStepParams, BenchStepResult> {
  return {
    kind: "bench",
    version: 1,
    prefix: "benches",
    async *run(p, ctx) {
      const rt = ctx.runtime as unknown as BenchRuntime;
      const dataset = rt.datasetDir ?? p.bench.dataset;
      const { tasks } = await loadDataset(dataset, {
        cacheDir: rt.cacheDir,
        ...(p.bench.tasks ? { only: p.bench.tasks } : {}),
        signal: ctx.signal,
      });
      const inFlight = new KeyedSemaphore(p.bench.concurrency);
      const variants: SuiteVariant[] = Object.keys(p.variants).map((name) => {
        const ep = rt.endpoints[name];
        if (!ep && (p.bench.agent === "terminus-json" || p.bench.agent === "terminus-xml")) {
          throw new Error(`no endpoint serves variant "${name}"`);
        }
        const agent =
          p.bench.agent === "oracle"
            ? createOracleAgent()
            : p.bench.agent === "nop"
              ? createNopAgent()
              : createTerminusAgent({
                  format: p.bench.agent === "terminus-xml" ? "xml" : "json",
                  llm: createLlmClient({
                    endpoint: ep!.url,
                    model: ep!.model,
                    inFlight,
                    sampling: {
                      temperature: p.bench.temperature,
                      ...(p.bench.maxTokens !== undefined ? { max_tokens: p.bench.maxTokens } : {}),
                    },
                  }),
                  acceptSplitJson: p.bench.acceptSplitJson,
                  ...(p.bench.maxTurns !== undefined ? { maxTurns: p.bench.maxTurns } : {}),
                });
        return { name, agent };
      });
      const trials = `trials/${ctx.key}`;
      const gen = runSuite({
        runId: ctx.key,
        tasks,
        variants,
        replicas: p.bench.replicas,
        store: ctx.store,
        prefix: trials,
        envFactory,
        concurrency: p.bench.concurrency,
        signal: ctx.signal,
      });
      let total = 1;
      let done = 0;
      let r = await gen.next();
      while (!r.done) {
        const e = r.value;
        if (e.type === "planned") {
          total = e.total;
          done = e.alreadyDone;
          yield { done, total, unit: "trials", message: `${e.alreadyDone} already done` };
        } else if (e.type === "trial_finished") {
          done = e.done;
          ctx.metrics?.trials.inc({ outcome: e.result.outcome });
          yield {
            done,
            total,
            unit: "trials",
            message: `${e.result.taskId} ${e.result.variant} r${e.result.replica}: ${e.result.outcome}`,
          };
        } else if (e.type === "trial_event") {
          // Every agent turn is a heartbeat: the step worker tells the bus the job is alive.
          yield { done, total, unit: "trials" };
        } else if (e.type === "trial_started") {
          yield { done, total, unit: "trials", message: `${e.taskId} ${e.variant} r${e.replica}` };
        }
        r = await gen.next();
      }
      const byVariant: Record<string, { trials: number; passed: number }> = {};
      for (const [v, s] of Object.entries(r.value.byVariant))
        byVariant[v] = { trials: s.trials, passed: s.passed };
      return { trials, total: r.value.total, byVariant };
    },
  };
}

/** The bench step of the embedded shape: trials in the local bubblewrap + tmux sandbox. */
export const benchStep = createBenchStep((task, trialId) => createLocalEnvironment(task, trialId));

/** Every trial result under a bench's trials prefix, in trial-id order. */
export async function readTrialResults(store: ObjectStore, prefix: string): Promise<TrialResult[]> {
  const keys: string[] = [];
  for await (const o of store.list(`${prefix}/`))
    if (o.key.endsWith("/result.json")) keys.push(o.key);
  keys.sort();
  const out: TrialResult[] = [];
  for (const k of keys)
    out.push(JSON.parse(new TextDecoder().decode(await store.getBytes(k))) as TrialResult);
  return out;
}

// ---------------------------------------------------------------------------------------------
// report

export interface ReportStepParams {
  readonly title: string;
  readonly bench: string | null;
  readonly directions: string | null;
  readonly evals: Readonly<Record<string, string>>;
  readonly variants: readonly ConcreteVariant[];
  readonly seed: number;
  readonly bootstrap: number;
}

export interface ReportStepResult {
  readonly files: readonly string[];
  readonly summaries: ReadonlyArray<{
    variant: string;
    trials: number;
    passes: number;
    accuracy: number | null;
  }>;
}

function toStatsRecord(t: TrialResult): TrialRecord {
  return {
    variant: t.variant,
    taskId: t.taskId,
    replica: t.replica,
    reward: t.reward,
    outcome: t.outcome,
    turns: t.turns,
    parseErrors: t.parseErrors,
    noCmdTurns: t.noCmdTurns,
  };
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)} %` : "–");
const fixed = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : "–");

/** The report sections a sweep adds before the benchmark statistics. */
function sweepSections(
  refusal: Readonly<Record<string, Omit<RefusalEvalReport, "samples">>>,
  directions: DirectionsMeta | undefined,
): ReportSection[] {
  const out: ReportSection[] = [];
  const evals = Object.entries(refusal);
  if (evals.length > 0) {
    const judges = [...new Set(evals.flatMap(([, r]) => Object.keys(r.refusal)))];
    const rows = evals.map(([variant, r]) => [
      escapeHtml(variant),
      ...judges.map((j) => {
        const x = r.refusal[j];
        return x ? `${x.count}/${x.n} = ${pct(x.rate)} [${pct(x.low)}, ${pct(x.high)}]` : "–";
      }),
      r.kl
        ? `${fixed(r.kl.mean, 4)} (${r.kl.prompts} prompts, ${fixed(r.kl.meanPositions, 1)} tokens each)`
        : "–",
      r.agreement ? `κ = ${fixed(r.agreement.kappa)}` : "–",
      String(r.maxTokens),
    ]);
    out.push({
      title: "Refusal / capability denial",
      html:
        htmlTable(
          [
            "variant",
            ...judges.map((j) => `refusal rate (${j} judge), Wilson 95 %`),
            "KL vs base (mean over first k tokens)",
            "judge agreement",
            "tokens generated",
          ],
          rows,
        ) +
        '<p class="muted">Refusal rate on the eval split of the refuse bucket (prompts the directions were not fit on), judged on at least 100 generated tokens. KL: mean per-token KL(base ‖ variant) from top logprobs over the first k generated tokens of the comply prompts.</p>',
    });
  }
  if (directions) {
    const rows = directions.ranking.map((m) => [
      m.layer === directions.selection.layer ? `<b>${m.layer}</b>` : String(m.layer),
      fixed(m.auc),
      `[${fixed(m.aucLow)}, ${fixed(m.aucHigh)}]`,
      fixed(m.cohensD, 2),
      fixed(m.cosPrev),
      fixed(m.cosNext),
    ]);
    out.push({
      title: "Refusal directions by layer",
      html:
        `<p>Method <b>${escapeHtml(directions.method)}</b>; selected layer <b>${directions.selection.layer}</b> (policy ${escapeHtml(directions.selection.policy)}). AUC of the per-prompt projection on the select split, bootstrap 95 % CI.</p>` +
        htmlTable(["layer", "AUC", "AUC 95 % CI", "Cohen's d", "cos prev", "cos next"], rows),
    });
  }
  return out;
}

export const reportStep: StepDefinition<ReportStepParams, ReportStepResult> = {
  kind: "report",
  version: 1,
  prefix: "reports",
  async *run(p, ctx) {
    const bench = p.bench ? await readArtifact(ctx.store, p.bench) : undefined;
    const trialsPrefix = (bench?.meta.result as BenchStepResult | undefined)?.trials;
    const trials = trialsPrefix ? await readTrialResults(ctx.store, trialsPrefix) : [];
    yield { done: 1, total: 3, unit: "parts", message: "records" };
    const dirs = p.directions
      ? await readDirections(ctx.store, p.directions, ctx.signal)
      : undefined;
    const refusal: Record<string, Omit<RefusalEvalReport, "samples">> = {};
    for (const [variant, prefix] of Object.entries(p.evals)) {
      const m = await readArtifact(ctx.store, prefix);
      if (m) refusal[variant] = (m.meta as { result: Omit<RefusalEvalReport, "samples"> }).result;
    }
    const data = buildReport(trials.map(toStatsRecord), {
      title: p.title,
      seed: p.seed,
      bootstrapResamples: p.bootstrap,
      variants: p.variants.map((v) => ({
        variant: v.name,
        params:
          v.kind === "abliterated"
            ? { layer: v.layer, scale: v.scale, method: v.method }
            : v.kind === "checkpoint"
              ? { checkpoint: v.path }
              : {},
      })),
      ...(dirs ? { layerAuc: dirs.meta.ranking.map((m) => ({ layer: m.layer, auc: m.auc })) } : {}),
    });
    yield { done: 2, total: 3, unit: "parts", message: "statistics" };
    const enc = new TextEncoder();
    const summary = {
      ...data,
      refusal,
      directions: dirs ? { selection: dirs.meta.selection, ranking: dirs.meta.ranking } : null,
    };
    const html = renderReportHtml(data, sweepSections(refusal, dirs?.meta));
    await ctx.writer.addFile("report.html", enc.encode(html));
    await ctx.writer.addFile("summary.json", enc.encode(`${JSON.stringify(summary, null, 2)}\n`));
    await ctx.writer.addFile("master_summary.csv", enc.encode(masterSummaryCsv(data)));
    await ctx.writer.addFile(
      "trials.jsonl",
      enc.encode(trials.map((t) => JSON.stringify(t)).join("\n") + (trials.length ? "\n" : "")),
    );
    yield { done: 3, total: 3, unit: "parts", message: "written" };
    return {
      files: ["report.html", "summary.json", "master_summary.csv", "trials.jsonl"],
      summaries: data.summaries.map((s) => ({
        variant: s.variant,
        trials: s.trials,
        passes: s.passes,
        accuracy: s.accuracy,
      })),
    };
  },
};

/** Every step of a sweep, for `startStepWorkers`. */
export const SWEEP_STEPS = [
  modelStep,
  captureStep,
  directionsStep,
  patchStep,
  evalStep,
  benchStep,
  reportStep,
] as const;
