/**
 * One capture from a local model folder to a cached activations artifact: content-derived step
 * key, cache check, optional behaviour filter, then {@link runCapture}. Shared by `abl capture`
 * and the capture service.
 */

import { type Engine, type LoadedTokenizer, loadModelWithTokenizer } from "@abl/engine";
import { artifactExists, type ObjectStore, stepKey } from "@abl/store";
import type { ActivationsMeta, CaptureEngineName } from "./activations-artifact.ts";
import { createBuiltinCapturer, createEngineEndpoint } from "./builtin-engine.ts";
import { type CaptureProgress, type ResidualCapturer, runCapture } from "./capture-job.ts";
import type { ContrastSet } from "./contrast-set.ts";
import { ActivationsError } from "./errors.ts";
import { createMarkerJudge } from "./judges.ts";
import { filterByBehaviour } from "./refusal-eval.ts";
import { type ContrastSplits, splitContrastSet } from "./splits.ts";
import { createTransformersCapturer, type WorkerLauncher } from "./transformers-capturer.ts";

/** Bumped when the capture code changes what it writes, so old cached artifacts are not reused. */
export const CAPTURE_CODE_VERSION = "capture-1";

/** Options of {@link captureActivations}. */
export interface CaptureRunOptions {
  readonly store: ObjectStore;
  readonly modelDir: string;
  readonly modelDigest: string;
  readonly set: ContrastSet;
  readonly splits: ContrastSplits;
  readonly engine?: CaptureEngineName;
  readonly chatTemplate?: string;
  readonly batchSize?: number;
  /** Keep only prompts the base model really refuses / answers (built-in engine generation). */
  readonly filter?: boolean;
  /** Launcher for the transformers worker (local subprocess by default). */
  readonly launcher?: WorkerLauncher;
  /**
   * Supplies the built-in engine for `modelDir` instead of loading it here; the caller keeps
   * ownership (a long-running service keeps one loaded across jobs), so it is not disposed.
   * Called only when the capture is not already cached.
   */
  readonly builtin?: (signal?: AbortSignal) => Promise<BuiltinModel>;
  readonly signal?: AbortSignal;
  readonly onProgress?: (
    e: CaptureProgress | { type: "filter"; kept: Record<"refuse" | "comply", number> },
  ) => void;
}

/** A loaded built-in engine and the tokenizer of the same model folder. */
export interface BuiltinModel {
  readonly engine: Engine;
  readonly tokenizer: LoadedTokenizer;
}

/** Result of {@link captureActivations}. */
export interface CaptureRunResult {
  readonly key: string;
  readonly prefix: string;
  readonly cached: boolean;
}

/** The step key of a capture: everything its output depends on. */
export function captureStepKey(
  o: Pick<CaptureRunOptions, "modelDigest" | "splits" | "engine" | "chatTemplate" | "filter">,
): string {
  return stepKey("capture", {
    code: CAPTURE_CODE_VERSION,
    model: o.modelDigest,
    prompts: o.splits.digests,
    seed: o.splits.seed,
    engine: o.engine ?? "builtin",
    chatTemplate: o.chatTemplate ?? null,
    filter: o.filter ?? false,
    positions: [-1],
  });
}

/** Captures (or finds cached) activations; returns where they are. */
export async function captureActivations(
  options: CaptureRunOptions,
): Promise<CaptureRunResult & { meta?: ActivationsMeta }> {
  const key = captureStepKey(options);
  const prefix = `activations/${key}`;
  if (await artifactExists(options.store, prefix)) return { key, prefix, cached: true };
  const engineName = options.engine ?? "builtin";
  const signal = options.signal;
  let set = options.set;
  let splits = options.splits;
  let capturer: ResidualCapturer | undefined;
  let dispose = async () => {};
  if (engineName === "builtin" || options.filter) {
    let engine: Engine;
    let tokenizer: LoadedTokenizer;
    if (options.builtin) ({ engine, tokenizer } = await options.builtin(signal));
    else {
      ({ engine, tokenizer } = await loadModelWithTokenizer(
        options.modelDir,
        signal ? { signal } : {},
      ));
      const owned = engine;
      dispose = () => owned.dispose();
    }
    if (options.filter) {
      const base = createEngineEndpoint(engine, tokenizer, "base", options.chatTemplate);
      const kept = await filterByBehaviour(set.refuse, set.comply, {
        base,
        judge: createMarkerJudge(),
        ...(signal ? { signal } : {}),
      });
      set = { name: set.name, ...kept };
      splits = splitContrastSet(set, splits.seed, splits.fractions);
      options.onProgress?.({
        type: "filter",
        kept: { refuse: kept.refuse.length, comply: kept.comply.length },
      });
    }
    capturer = createBuiltinCapturer({
      engine,
      tokenizer,
      modelDigest: options.modelDigest,
      ...(options.chatTemplate ? { chatTemplate: options.chatTemplate } : {}),
      ...(options.batchSize ? { batchSize: options.batchSize } : {}),
    });
  }
  if (engineName === "transformers") {
    capturer = createTransformersCapturer({
      model: { dir: options.modelDir },
      modelDigest: options.modelDigest,
      ...(options.launcher ? { launcher: options.launcher } : {}),
      ...(options.chatTemplate ? { chatTemplate: options.chatTemplate } : {}),
      ...(options.batchSize ? { batchSize: options.batchSize } : {}),
    });
  }
  if (!capturer)
    throw new ActivationsError(
      `unknown capture engine "${String(engineName)}" (builtin or transformers)`,
    );
  try {
    const gen = runCapture({
      store: options.store,
      prefix,
      set,
      splits,
      capturer,
      ...(signal ? { signal } : {}),
    });
    let r = await gen.next();
    while (!r.done) {
      options.onProgress?.(r.value);
      r = await gen.next();
    }
    return { key, prefix, cached: false, meta: r.value };
  } finally {
    await dispose();
  }
}
