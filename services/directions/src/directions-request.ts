import { candidateLayers, directionsStepKey, type SelectionPolicy as Policy } from "@abl/refusal";
import { DirectionMethod, RpcError, SelectionPolicy, type StartDirectionsRequest } from "@abl/rpc";
import { type ObjectStore, readArtifact, validateKey } from "@abl/store";

/** Bus job kind of directions jobs (`abl.job.directions`). */
export const DIRECTIONS_JOB_KIND = "directions";
/** Largest accepted bootstrap request; the library caps at 100 000 as well. */
export const MAX_BOOTSTRAP_SAMPLES = 100_000;

/** A directions job on the bus: plain JSON with every default filled in. */
export interface DirectionsJob {
  readonly activations: string;
  readonly method: "mean-diff" | "projected" | "pca";
  readonly selection: Policy;
  readonly reference: string | null;
  readonly expectModelDigest: string | null;
  /** Store prefix of the model folder (causal policy only). */
  readonly modelKey: string | null;
  /** Digest the model cache files the model under (causal policy only): the named or recorded one. */
  readonly modelDigest: string | null;
  readonly resamples: number | null;
  readonly seed: number;
  readonly stepKey: string;
  readonly outputKey: string;
}

function invalid(msg: string): never {
  throw new RpcError("INVALID_ARGUMENT", msg);
}

function prefixOf(field: string, key: string | undefined): string {
  if (!key) invalid(`${field}.key is required`);
  const k = key.replace(/\/+$/, "");
  try {
    validateKey(k);
  } catch (err) {
    invalid(`${field}.key: ${(err as Error).message}`);
  }
  return k;
}

/** Validates a StartDirections request and computes its step key. */
export async function directionsJobFromRequest(
  req: StartDirectionsRequest,
  store: ObjectStore,
): Promise<DirectionsJob> {
  const activations = prefixOf("activations", req.activations?.key);
  const acts = await readArtifact(store, activations);
  if (!acts) throw new RpcError("NOT_FOUND", `no activations artifact at ${activations}`);
  const meta = acts.meta as { kind?: string; layers?: number; modelDigest?: string };
  if (meta.kind !== "activations")
    invalid(`${activations} is not an activations artifact (kind ${String(meta.kind)})`);
  const method =
    req.method === DirectionMethod.PROJECTED
      ? "projected"
      : req.method === DirectionMethod.PCA
        ? "pca"
        : "mean-diff";
  if (req.method > DirectionMethod.PCA) invalid(`method ${req.method} is unknown`);
  let selection: Policy;
  if (req.selection === SelectionPolicy.EXPLICIT) {
    if (req.layer === undefined) invalid("selection EXPLICIT needs layer");
    const layers = meta.layers ?? 0;
    if (req.layer >= layers)
      invalid(`layer ${req.layer} is out of range: the activations have layers 0..${layers - 1}`);
    selection = { type: "explicit", layer: req.layer };
  } else if (req.selection === SelectionPolicy.CAUSAL) {
    if (!req.model?.storeKey) invalid("selection CAUSAL needs model.store_key to generate with");
    if (req.maxKl < 0 || !Number.isFinite(req.maxKl))
      invalid(`max_kl must be ≥ 0, got ${req.maxKl}`);
    const available = candidateLayers(meta.layers ?? 0).length;
    if (req.causalCandidates > available)
      invalid(
        `causal_candidates ${req.causalCandidates} exceeds the ${available} candidate layers of ${meta.layers ?? 0} residual layers (1..⌊0.8·blocks⌋)`,
      );
    selection = {
      type: "causal",
      ...(req.maxKl > 0 ? { maxKl: req.maxKl } : {}),
      ...(req.causalCandidates > 0 ? { candidates: req.causalCandidates } : {}),
    };
  } else if (
    req.selection === SelectionPolicy.BEST_AUC ||
    req.selection === SelectionPolicy.UNSPECIFIED
  )
    selection = { type: "best-auc" };
  else invalid(`selection ${req.selection} is unknown`);
  if (req.causalCandidates > 0 && selection.type !== "causal")
    invalid(
      `causal_candidates (${req.causalCandidates}) applies only to SELECTION_POLICY_CAUSAL, not ${selection.type}`,
    );
  if (req.bootstrapSamples > MAX_BOOTSTRAP_SAMPLES)
    invalid(`bootstrap_samples must be ≤ ${MAX_BOOTSTRAP_SAMPLES}, got ${req.bootstrapSamples}`);
  if (req.seed > 0xffffffffn) invalid(`seed must fit in 32 bits, got ${req.seed}`);
  const expect = req.model?.digest || null;
  if (expect && meta.modelDigest !== expect) {
    throw new RpcError(
      "FAILED_PRECONDITION",
      `activations at ${activations} were captured from model ${meta.modelDigest}, not the named ${expect}`,
    );
  }
  const reference = req.referenceDirection?.key
    ? prefixOf("reference_direction", req.referenceDirection.key)
    : null;
  const modelKey =
    selection.type === "causal" ? prefixOf("model.store_key", req.model?.storeKey) : null;
  const modelDigest = modelKey ? (expect ?? meta.modelDigest ?? null) : null;
  if (modelKey && !modelDigest)
    invalid(
      `selection CAUSAL needs model.digest: ${activations} records no model digest to cache the model under`,
    );
  const resamples = req.bootstrapSamples || null;
  const seed = Number(req.seed);
  // The same key the library uses for the artifact's prefix, so CLI and service share the cache.
  const key = await directionsStepKey({
    store,
    activations,
    method,
    selection,
    seed,
    ...(reference ? { reference } : {}),
    ...(resamples ? { resamples } : {}),
  });
  return {
    activations,
    method,
    selection,
    reference,
    expectModelDigest: expect,
    modelKey,
    modelDigest,
    resamples,
    seed,
    stepKey: key,
    outputKey: `directions/${key}`,
  };
}
