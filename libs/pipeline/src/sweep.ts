/**
 * A sweep end to end: model → capture → directions → patch per variant → serve → refusal eval →
 * bench → report. Every step goes through `runStep`, so a rerun after a crash finds finished steps
 * in the store and only does what is missing; the bench resumes trial by trial.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { LOCAL_TASKS_DIR, loadDataset } from "@abl/bench";
import { parseHubSpec, readGgufHeader } from "@abl/checkpoint";
import type { DirectionsMeta } from "@abl/refusal";
import type { ObjectStore } from "@abl/store";
import { type ConcreteVariant, expandVariants, SpecError, type SweepSpec } from "./spec.ts";
import { runStep, type StepOutcome, type StepRunnerOptions } from "./step-runner.ts";
import {
  artifactDigest,
  type BenchRuntime,
  type BenchStepResult,
  type EvalRuntime,
  type ModelRef,
  type ModelStepResult,
  type ReportStepResult,
} from "./steps.ts";

/** Variants served for the evaluation and the bench. */
export interface ServedVariants {
  /** Variant name → OpenAI-compatible base URL (with `/v1`) and model id. */
  readonly endpoints: Readonly<Record<string, { url: string; model: string }>>;
  close(): Promise<void>;
}

/**
 * Starts servers for the variants (the built-in engine embedded, sglang in the cluster). Each
 * variant names the store prefix of its model artifact.
 */
export type ServeVariants = (
  variants: readonly { name: string; prefix: string }[],
  signal: AbortSignal,
) => Promise<ServedVariants>;

/** What a sweep reports while it runs (besides the per-step events on the bus). */
export type SweepPhaseEvent =
  | { type: "phase"; phase: string; detail?: string }
  | { type: "step"; kind: string; label: string; key: string; cached: boolean };

/** Options of {@link runSweep}. */
export interface SweepOptions {
  readonly spec: SweepSpec;
  /** Folder the spec was read from; relative paths in it resolve from here. */
  readonly specDir: string;
  readonly steps: StepRunnerOptions;
  /** Local cache folder (Hub downloads, GGUF conversions, models fetched from S3). */
  readonly cacheDir: string;
  readonly serve: ServeVariants;
  readonly onEvent?: (e: SweepPhaseEvent) => void;
  readonly signal?: AbortSignal;
}

/** What a finished sweep returns. */
export interface SweepResult {
  readonly model: ModelRef & ModelStepResult;
  readonly directions: DirectionsMeta | null;
  readonly variants: readonly ConcreteVariant[];
  readonly report: StepOutcome<ReportStepResult>;
  /** Store prefix of the report artifact (report.html, summary.json, master_summary.csv). */
  readonly reportPrefix: string;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** sha256 of a file, or of a folder's file names, sizes and contents. */
async function contentDigest(path: string, signal?: AbortSignal): Promise<string> {
  const h = createHash("sha256");
  const st = await stat(path);
  const files = st.isDirectory()
    ? (await readdir(path, { withFileTypes: true }))
        .filter((e) => e.isFile() && !e.name.startsWith("."))
        .map((e) => e.name)
        .sort()
        .map((n) => join(path, n))
    : [path];
  for (const f of files) {
    h.update(`${f.slice(path.length)}\0`);
    for await (const chunk of createReadStream(f, { highWaterMark: 4 << 20 })) {
      signal?.throwIfAborted();
      h.update(chunk as Buffer);
    }
  }
  return h.digest("hex");
}

/** Block count of a local model (HF folder or GGUF file), or undefined for a Hub id. */
async function localLayerCount(source: string): Promise<number | undefined> {
  const st = await stat(source).catch(() => undefined);
  if (!st) return undefined;
  if (st.isDirectory()) {
    const cfg = JSON.parse(await readFile(join(source, "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    const text = (cfg.text_config as Record<string, unknown> | undefined) ?? cfg;
    return Number(text.num_hidden_layers);
  }
  const header = await readGgufHeader(source);
  const arch = header.metadata.get("general.architecture");
  const blocks = header.metadata.get(`${String(arch)}.block_count`);
  return blocks === undefined ? undefined : Number(blocks);
}

/** Resolves the spec's relative paths and the bench dataset folder. */
export function resolveSpecPaths(spec: SweepSpec, specDir: string): SweepSpec {
  const abs = (p: string) => resolve(specDir, p);
  const isLocal = (s: string) => s.startsWith(".") || s.startsWith("/") || s.endsWith(".gguf");
  return {
    ...spec,
    model: { source: isLocal(spec.model.source) ? abs(spec.model.source) : spec.model.source },
    contrast: spec.contrast.file
      ? { ...spec.contrast, file: abs(spec.contrast.file) }
      : spec.contrast,
    variants: spec.variants.map((v) => (v.kind === "checkpoint" ? { ...v, path: abs(v.path) } : v)),
    bench: {
      ...spec.bench,
      dataset:
        spec.bench.dataset === "builtin"
          ? LOCAL_TASKS_DIR
          : /^[a-z]+:\/\//.test(spec.bench.dataset) || spec.bench.dataset.includes("@")
            ? spec.bench.dataset
            : abs(spec.bench.dataset),
    },
  };
}

/**
 * Checks what the spec names exists and fits before any work starts: the model source, the layer
 * range of explicit layers, checkpoint variants, the contrast file, the dataset and its tasks.
 * Throws `SpecError` listing every problem.
 */
export async function validateSweepInputs(spec: SweepSpec, cacheDir: string): Promise<void> {
  const problems: string[] = [];
  const source = spec.model.source;
  let layers: number | undefined;
  if (await exists(source)) {
    try {
      layers = await localLayerCount(source);
    } catch (err) {
      problems.push(
        `model.source: ${source} is neither an HF folder with config.json nor a GGUF file (${(err as Error).message})`,
      );
    }
  } else if (
    source.startsWith("/") ||
    source.startsWith(".") ||
    source.endsWith(".gguf") ||
    !parseHubSpec(source)
  ) {
    problems.push(
      `model.source: ${source} does not exist (give an HF folder, a .gguf file or a Hub id org/name)`,
    );
  }
  if (layers !== undefined) {
    // Residual rows are 0 (embeddings) … layers (last block's output).
    const check = (where: string, layer: number) => {
      if (layer > layers!)
        problems.push(
          `${where}: layer ${layer} is beyond the model's ${layers} layers (0..${layers})`,
        );
    };
    if (spec.directions.layer !== undefined) check("directions.layer", spec.directions.layer);
    spec.variants.forEach((v, i) => {
      if (v.kind === "abliterated")
        for (const l of v.layer) if (l !== "selected") check(`variants[${i}].layer`, l);
    });
  }
  for (const [i, v] of spec.variants.entries()) {
    if (v.kind === "checkpoint" && !(await exists(v.path)))
      problems.push(`variants[${i}].path: ${v.path} does not exist`);
  }
  if (spec.contrast.file && !(await exists(spec.contrast.file))) {
    problems.push(`contrast.file: ${spec.contrast.file} does not exist`);
  }
  if (spec.bench.enabled) {
    const ds = spec.bench.dataset;
    if (!/^[a-z]+:\/\//.test(ds) && !ds.includes("@") && !(await exists(ds))) {
      problems.push(`bench.dataset: ${ds} does not exist`);
    } else if (await exists(ds)) {
      try {
        const { tasks } = await loadDataset(ds, { cacheDir });
        const ids = new Set(tasks.map((t) => t.id));
        for (const t of spec.bench.tasks ?? []) {
          if (!ids.has(t))
            problems.push(
              `bench.tasks: "${t}" is not in ${ds} (it has ${[...ids].sort().join(", ")})`,
            );
        }
      } catch (err) {
        problems.push(`bench.dataset: ${(err as Error).message}`);
      }
    }
  }
  if (problems.length > 0) throw new SpecError(spec.name, problems);
}

/** Runs a sweep; see the file comment. */
export async function runSweep(o: SweepOptions): Promise<SweepResult> {
  const { spec, signal } = o;
  const emit = o.onEvent ?? (() => {});
  const step = async <R>(
    kind: string,
    label: string,
    params: unknown,
    runtime: Record<string, unknown> = {},
  ) => {
    const r = await runStep<R>(o.steps, kind, params, {
      runtime: { cacheDir: o.cacheDir, ...runtime },
      ...(signal ? { signal } : {}),
    });
    emit({ type: "step", kind, label, key: r.key, cached: r.cached });
    return r;
  };

  emit({ type: "phase", phase: "model", detail: spec.model.source });
  const sourceDigest = (await exists(spec.model.source))
    ? await contentDigest(spec.model.source, signal)
    : `hub:${spec.model.source}`;
  const m = await step<ModelStepResult>("model", "import model", {
    source: spec.model.source,
    sourceDigest,
  });
  const model = { prefix: m.prefix, ...m.result };
  const modelRef: ModelRef = { prefix: m.prefix, digest: m.result.digest };

  emit({ type: "phase", phase: "capture" });
  const capture = await step<unknown>("capture", "capture residuals", {
    model: modelRef,
    contrast: spec.contrast,
    capture: spec.capture,
  });

  emit({ type: "phase", phase: "directions" });
  const dirs = await step<DirectionsMeta>("directions", "directions", {
    activations: capture.prefix,
    modelDigest: modelRef.digest,
    directions: spec.directions,
    seed: spec.report.seed,
  });
  const selected = dirs.result.selection.layer;
  const variants = expandVariants(spec.variants, selected);
  for (const v of variants) {
    if (v.kind === "abliterated" && v.layer >= dirs.result.layers) {
      throw new SpecError(spec.name, [
        `variant ${v.name}: layer ${v.layer} is beyond the directions' ${dirs.result.layers} rows (0..${dirs.result.layers - 1})`,
      ]);
    }
  }

  emit({ type: "phase", phase: "patch" });
  const models = new Map<string, ModelRef>();
  for (const v of variants) {
    if (v.kind === "base") models.set(v.name, modelRef);
    else if (v.kind === "checkpoint") {
      const digest = await contentDigest(v.path, signal);
      const c = await step<ModelStepResult>("model", `import ${v.name}`, {
        source: v.path,
        sourceDigest: digest,
      });
      models.set(v.name, { prefix: c.prefix, digest: c.result.digest });
    } else {
      const p = await step<unknown>("patch", `patch ${v.name}`, {
        model: modelRef,
        directions: dirs.prefix,
        layer: v.layer,
        scale: v.scale,
        method: v.method,
        targets: v.targets,
      });
      models.set(v.name, {
        prefix: p.prefix,
        digest: await artifactDigest(o.steps.store, p.prefix),
      });
    }
  }

  const needServe =
    spec.refusal.enabled || (spec.bench.enabled && spec.bench.agent.startsWith("terminus"));
  const evals: Record<string, string> = {};
  let bench: StepOutcome<BenchStepResult> | undefined;
  let served: ServedVariants | undefined;
  try {
    if (needServe) {
      emit({ type: "phase", phase: "serve", detail: variants.map((v) => v.name).join(", ") });
      const withBase = variants.some((v) => v.kind === "base")
        ? variants
        : [{ kind: "base" as const, name: "base" }, ...variants];
      const toServe = withBase.map((v) => ({
        name: v.name,
        prefix: models.get(v.name)?.prefix ?? modelRef.prefix,
      }));
      served = await o.serve(toServe, signal ?? new AbortController().signal);
    }
    const baseName = variants.find((v) => v.kind === "base")?.name ?? "base";
    if (spec.refusal.enabled && served) {
      emit({ type: "phase", phase: "refusal evaluation" });
      for (const v of variants) {
        const ep = served.endpoints[v.name]!;
        const base = served.endpoints[baseName]!;
        const runtime: EvalRuntime = {
          variantUrl: ep.url,
          variantModel: ep.model,
          baseUrl: base.url,
          baseModel: base.model,
        };
        const e = await step<unknown>(
          "refusal-eval",
          `refusal eval ${v.name}`,
          {
            variant: v.name,
            model: models.get(v.name),
            baseModel: modelRef,
            activations: capture.prefix,
            refusal: spec.refusal,
          },
          { ...runtime },
        );
        evals[v.name] = e.prefix;
      }
    }
    if (spec.bench.enabled) {
      emit({ type: "phase", phase: "bench" });
      const { tasks } = await loadDataset(spec.bench.dataset, {
        cacheDir: o.cacheDir,
        ...(spec.bench.tasks ? { only: spec.bench.tasks } : {}),
        ...(signal ? { signal } : {}),
      });
      const runtime: BenchRuntime = { endpoints: served?.endpoints ?? {}, cacheDir: o.cacheDir };
      bench = await step<BenchStepResult>(
        "bench",
        "bench",
        {
          variants: Object.fromEntries(variants.map((v) => [v.name, models.get(v.name)!.digest])),
          bench: spec.bench,
          tasks: Object.fromEntries(tasks.map((t) => [t.id, t.digest])),
        },
        { ...runtime },
      );
    }
  } finally {
    await served?.close();
  }

  emit({ type: "phase", phase: "report" });
  const report = await step<ReportStepResult>("report", "report", {
    title: `abliterate sweep "${spec.name}"`,
    bench: bench?.prefix ?? null,
    directions: dirs.prefix,
    evals,
    variants,
    seed: spec.report.seed,
    bootstrap: spec.report.bootstrap,
  });
  return { model, directions: dirs.result, variants, report, reportPrefix: report.prefix };
}

/** Copies the report files of a finished sweep out of the store into `dir`. */
export async function exportReport(
  store: ObjectStore,
  prefix: string,
  dir: string,
): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const out: string[] = [];
  for (const name of ["report.html", "summary.json", "master_summary.csv", "trials.jsonl"]) {
    const bytes = await store.getBytes(`${prefix}/${name}`);
    const tmp = join(dir, `.${name}.tmp-${process.pid}`);
    await writeFile(tmp, bytes);
    await rename(tmp, join(dir, name));
    out.push(join(dir, name));
  }
  return out;
}
