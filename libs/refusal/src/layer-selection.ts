/**
 * Choosing the layer whose direction gets removed: an explicit layer, the best AUC outside the
 * last 20 % of layers, or a causal search that measures refusal under ablation (Arditi et al.'s
 * selection, reference/abliteration.md §2.3).
 */
import { DirectionsError } from "./errors.ts";
import type { LayerMetrics } from "./layer-metrics.ts";
import { assertLayer } from "./residuals.ts";

/** Fraction of the deepest layers never chosen automatically: directions there tend to be output-format features. */
export const EXCLUDED_TAIL_FRACTION = 0.2;
/** KL ceiling of the causal policy when none is given; Arditi et al. drop candidates above 0.1. */
export const DEFAULT_CAUSAL_MAX_KL = 0.1;
/** Candidates (by AUC) the causal policy probes when not told otherwise; each costs a generation pass. */
export const DEFAULT_CAUSAL_CANDIDATES = 8;

/** A layer selection policy. */
export type SelectionPolicy =
  | { readonly type: "explicit"; readonly layer: number }
  | { readonly type: "best-auc" }
  | { readonly type: "causal"; readonly maxKl?: number; readonly candidates?: number };

/** Result of probing one candidate under ablation of its direction. */
export interface AblationProbeResult {
  /** Refusal rate on the select split's refuse prompts with the direction ablated. */
  readonly refusalRate: number;
  /** Mean KL(base ‖ ablated) on the select split's comply prompts. */
  readonly kl: number;
}

/** Runs the engine with one layer's direction ablated; supplied by whoever holds the model. */
export type AblationProbe = (layer: number, signal?: AbortSignal) => Promise<AblationProbeResult>;

/** What a selection decided, with the probes it ran (empty unless causal). */
export interface LayerSelection {
  readonly layer: number;
  readonly policy: SelectionPolicy["type"];
  readonly probes: readonly ({ readonly layer: number } & AblationProbeResult)[];
}

/**
 * Candidate layers for automatic policies: 1 … ⌊0.8·L⌋ where L is the block count. Layer 0 (the
 * embedding output) only encodes token identity, so it is never a candidate either.
 */
export function candidateLayers(residualLayers: number): number[] {
  const blocks = residualLayers - 1;
  const last = Math.floor((1 - EXCLUDED_TAIL_FRACTION) * blocks);
  const out: number[] = [];
  for (let l = 1; l <= last; l++) out.push(l);
  return out;
}

function byAuc(rows: readonly LayerMetrics[], residualLayers: number): LayerMetrics[] {
  const allowed = new Set(candidateLayers(residualLayers));
  const c = rows.filter((r) => allowed.has(r.layer) && Number.isFinite(r.auc));
  if (c.length === 0) {
    throw new DirectionsError(
      `no candidate layer: ${residualLayers} residual layers leave none outside the excluded tail`,
    );
  }
  // Highest AUC; ties by the higher CI lower bound, then the larger Cohen's d (AUC saturates at
  // 1 on easily separated sets such as agent-shell, where the effect size still tells layers
  // apart), then the shallower layer.
  return c.sort(
    (a, b) => b.auc - a.auc || b.aucLow - a.aucLow || b.cohensD - a.cohensD || a.layer - b.layer,
  );
}

/** Applies a selection policy to a ranking. `probe` is required for the causal policy. */
export async function selectLayer(
  policy: SelectionPolicy,
  rows: readonly LayerMetrics[],
  probe?: AblationProbe,
  signal?: AbortSignal,
): Promise<LayerSelection> {
  const residualLayers = rows.length;
  switch (policy.type) {
    case "explicit":
      assertLayer(policy.layer, residualLayers);
      return { layer: policy.layer, policy: "explicit", probes: [] };
    case "best-auc":
      return {
        layer: (byAuc(rows, residualLayers)[0] as LayerMetrics).layer,
        policy: "best-auc",
        probes: [],
      };
    case "causal": {
      if (!probe)
        throw new DirectionsError("the causal policy needs an ablation probe (an engine to run)");
      const maxKl = policy.maxKl ?? DEFAULT_CAUSAL_MAX_KL;
      const n = policy.candidates ?? DEFAULT_CAUSAL_CANDIDATES;
      if (!(maxKl > 0)) throw new DirectionsError(`causal maxKl must be > 0, got ${maxKl}`);
      if (!Number.isInteger(n) || n < 1)
        throw new DirectionsError(`causal candidates must be ≥ 1, got ${n}`);
      const probes: ({ layer: number } & AblationProbeResult)[] = [];
      for (const row of byAuc(rows, residualLayers).slice(0, n)) {
        signal?.throwIfAborted();
        probes.push({ layer: row.layer, ...(await probe(row.layer, signal)) });
      }
      const ok = probes
        .filter((p) => p.kl <= maxKl)
        .sort((a, b) => a.refusalRate - b.refusalRate || a.kl - b.kl);
      const best = ok[0];
      if (!best) {
        const minKl = Math.min(...probes.map((p) => p.kl));
        throw new DirectionsError(
          `causal selection: all ${probes.length} candidates exceed KL ${maxKl} (lowest ${minKl})`,
        );
      }
      return { layer: best.layer, policy: "causal", probes };
    }
  }
}
