/**
 * One directions step with caching: content-derived key, cache check, the causal probe wired to
 * the built-in engine when that policy is chosen, then {@link runDirections}. Shared by
 * `abl directions` and the directions service.
 */
import { loadModelWithTokenizer } from "@abl/engine";
import { artifactExists, type ObjectStore, readArtifact, stepKey } from "@abl/store";
import { readActivations } from "./activations-artifact.ts";
import { createCausalProbe, createEngineEndpoint } from "./builtin-engine.ts";
import type { ContrastPrompt } from "./contrast-set.ts";
import type { DirectionMethod } from "./direction-math.ts";
import { type DirectionsMeta, readDirections } from "./directions-artifact.ts";
import { type DirectionsProgress, runDirections } from "./directions-job.ts";
import { DirectionsError } from "./errors.ts";
import { createMarkerJudge } from "./judges.ts";
import type { SelectionPolicy } from "./layer-selection.ts";

/** Bumped when the directions code changes its output. */
export const DIRECTIONS_CODE_VERSION = "directions-2";

/** Options of {@link computeDirectionsStep}. */
export interface DirectionsRunOptions {
  readonly store: ObjectStore;
  readonly activations: string;
  readonly method?: DirectionMethod;
  readonly selection: SelectionPolicy;
  readonly expectModelDigest?: string;
  readonly reference?: string;
  readonly resamples?: number;
  readonly seed?: number;
  /** Local model folder; needed by the causal policy. */
  readonly modelDir?: string;
  /** Tokens generated per refuse prompt by the causal probe. */
  readonly probeMaxTokens?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (e: DirectionsProgress) => void;
}

/** The step key of a directions run. */
export async function directionsStepKey(o: DirectionsRunOptions): Promise<string> {
  const acts = await readArtifact(o.store, o.activations);
  if (!acts) throw new DirectionsError(`no activations artifact at ${o.activations} (no manifest)`);
  const ref = o.reference ? await readArtifact(o.store, o.reference) : undefined;
  if (o.reference && !ref)
    throw new DirectionsError(`no reference directions artifact at ${o.reference}`);
  return stepKey("directions", {
    code: DIRECTIONS_CODE_VERSION,
    activations: acts.files,
    method: o.method ?? "mean-diff",
    selection: o.selection,
    reference: ref?.files ?? null,
    resamples: o.resamples ?? null,
    seed: o.seed ?? 0,
    probeMaxTokens: o.probeMaxTokens ?? null,
  });
}

/** Computes (or finds cached) directions; returns the artifact prefix and its metadata. */
export async function computeDirectionsStep(
  o: DirectionsRunOptions,
): Promise<{ key: string; prefix: string; cached: boolean; meta: DirectionsMeta }> {
  const key = await directionsStepKey(o);
  const prefix = `directions/${key}`;
  if (await artifactExists(o.store, prefix)) {
    const { meta } = await readDirections(o.store, prefix, o.signal);
    if (o.expectModelDigest !== undefined && meta.modelDigest !== o.expectModelDigest) {
      throw new DirectionsError(
        `directions at ${prefix} belong to model ${meta.modelDigest}, not the named ${o.expectModelDigest}`,
      );
    }
    return { key, prefix, cached: true, meta };
  }
  let dispose = async () => {};
  let probe: Parameters<typeof runDirections>[0]["probe"];
  if (o.selection.type === "causal") {
    if (!o.modelDir)
      throw new DirectionsError("the causal policy needs the model folder to generate with");
    const acts = await readActivations(
      o.store,
      o.activations,
      o.signal ? { signal: o.signal } : {},
    );
    const pick = (b: "refuse" | "comply") =>
      acts.prompts.splits.indices.select[b].map((i) => acts.prompts.set[b][i] as ContrastPrompt);
    const { engine, tokenizer } = await loadModelWithTokenizer(o.modelDir);
    dispose = () => engine.dispose();
    const base = createEngineEndpoint(engine, tokenizer, "base", acts.meta.chatTemplate);
    const modelDir = o.modelDir;
    probe = (d) =>
      createCausalProbe(d, {
        modelDir,
        tokenizer,
        base,
        refuse: pick("refuse"),
        comply: pick("comply"),
        judge: createMarkerJudge(),
        chatTemplate: acts.meta.chatTemplate,
        ...(o.probeMaxTokens ? { maxTokens: o.probeMaxTokens } : {}),
      });
  }
  try {
    const gen = runDirections({
      store: o.store,
      activations: o.activations,
      prefix,
      selection: o.selection,
      ...(o.method ? { method: o.method } : {}),
      ...(o.expectModelDigest !== undefined ? { expectModelDigest: o.expectModelDigest } : {}),
      ...(o.reference ? { reference: o.reference } : {}),
      ...(o.resamples !== undefined ? { resamples: o.resamples } : {}),
      ...(o.seed !== undefined ? { seed: o.seed } : {}),
      ...(probe ? { probe } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    let r = await gen.next();
    while (!r.done) {
      o.onProgress?.(r.value);
      r = await gen.next();
    }
    return { key, prefix, cached: false, meta: r.value };
  } finally {
    await dispose();
  }
}
