/**
 * A directions job: read activations, compute per-layer directions on the fit split, rank the
 * layers on the select split, choose one by policy, and publish the directions artifact.
 */
import type { ObjectStore } from "@abl/store";
import { readActivations } from "./activations-artifact.ts";
import { computeDirections, type DirectionMethod, type Directions } from "./direction-math.ts";
import { type DirectionsMeta, publishDirections, readDirections } from "./directions-artifact.ts";
import { layerMetrics } from "./layer-metrics.ts";
import { type AblationProbe, type SelectionPolicy, selectLayer } from "./layer-selection.ts";

/** Progress of a directions job. */
export type DirectionsProgress = {
  readonly type: "progress";
  readonly step: "read" | "fit" | "rank" | "select" | "publish";
  readonly done: number;
  readonly total: number;
};

/** Options of {@link runDirections}. */
export interface DirectionsJobOptions {
  readonly store: ObjectStore;
  /** Prefix of the activations artifact. */
  readonly activations: string;
  /** Where the directions artifact goes. */
  readonly prefix: string;
  readonly method?: DirectionMethod;
  readonly selection: SelectionPolicy;
  /** The model the caller names; activations from another model are rejected. */
  readonly expectModelDigest?: string;
  /** Prefix of an earlier directions artifact to compare against. */
  readonly reference?: string;
  readonly resamples?: number;
  readonly seed?: number;
  /** Needed by the causal policy. */
  readonly probe?: (directions: Directions) => AblationProbe;
  readonly signal?: AbortSignal;
}

/** Runs a directions job and returns the published metadata. */
export async function* runDirections(
  options: DirectionsJobOptions,
): AsyncGenerator<DirectionsProgress, DirectionsMeta> {
  const { signal } = options;
  const acts = await readActivations(options.store, options.activations, {
    ...(options.expectModelDigest !== undefined
      ? { expectModelDigest: options.expectModelDigest }
      : {}),
    ...(signal ? { signal } : {}),
  });
  yield { type: "progress", step: "read", done: 1, total: 1 };
  const split = acts.prompts.splits.indices;
  const method = options.method ?? "mean-diff";
  const directions = computeDirections(acts.refuse, acts.comply, {
    method,
    refuseIndices: split.fit.refuse,
    complyIndices: split.fit.comply,
  });
  yield { type: "progress", step: "fit", done: directions.layers, total: directions.layers };
  const reference = options.reference
    ? (await readDirections(options.store, options.reference, signal)).directions
    : undefined;
  const ranking = layerMetrics(acts.refuse, acts.comply, directions, {
    refuseIndices: split.select.refuse,
    complyIndices: split.select.comply,
    ...(options.resamples !== undefined ? { resamples: options.resamples } : {}),
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    ...(reference ? { reference } : {}),
    ...(signal ? { signal } : {}),
  });
  yield { type: "progress", step: "rank", done: ranking.length, total: ranking.length };
  const selection = await selectLayer(
    options.selection,
    ranking,
    options.probe?.(directions),
    signal,
  );
  yield { type: "progress", step: "select", done: 1, total: 1 };
  const meta = await publishDirections(
    options.store,
    options.prefix,
    directions,
    {
      method,
      modelDigest: acts.meta.modelDigest,
      activations: options.activations,
      selection,
      ranking,
    },
    signal,
  );
  yield { type: "progress", step: "publish", done: 1, total: 1 };
  return meta;
}
