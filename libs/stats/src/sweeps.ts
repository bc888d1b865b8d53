import type { Interval } from "./proportions.ts";
import type { VariantSummary } from "./summary.ts";

/** What a variant was made with: swept parameters such as layer, lambda, method. */
export interface VariantInfo {
  readonly variant: string;
  readonly params: Readonly<Record<string, number | string>>;
}

/** A direction's separation score at one layer (from the directions step). */
export interface LayerAuc {
  readonly layer: number;
  readonly auc: number;
}

/** One point of a sweep curve. */
export interface SweepPoint {
  readonly variant: string;
  readonly value: number | string;
  readonly accuracy: number | null;
  readonly ci: Interval | null;
}

/** Accuracy against one swept parameter, one series per setting of the other parameters. */
export interface Sweep {
  readonly parameter: string;
  readonly numeric: boolean;
  readonly series: readonly { readonly label: string; readonly points: readonly SweepPoint[] }[];
  /** Per-layer AUC when the parameter is `layer` and AUCs were given. */
  readonly layerAuc?: readonly LayerAuc[];
}

/**
 * Finds every parameter that takes at least two values across the variants and builds its
 * accuracy curves (CI bands from the per-variant across-task CI).
 */
export function computeSweeps(
  summaries: readonly VariantSummary[],
  infos: readonly VariantInfo[],
  layerAuc: readonly LayerAuc[] = [],
): Sweep[] {
  const byVariant = new Map(infos.map((i) => [i.variant, i.params]));
  const keys = [...new Set(infos.flatMap((i) => Object.keys(i.params)))].sort();
  const sweeps: Sweep[] = [];
  for (const key of keys) {
    const withKey = summaries.filter((s) => byVariant.get(s.variant)?.[key] !== undefined);
    const values = new Set(withKey.map((s) => byVariant.get(s.variant)![key]));
    if (values.size < 2) continue;
    const numeric = [...values].every((v) => typeof v === "number");
    const series = new Map<string, SweepPoint[]>();
    for (const s of withKey) {
      const params = byVariant.get(s.variant)!;
      const label =
        Object.entries(params)
          .filter(([k]) => k !== key)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([k, v]) => `${k}=${v}`)
          .join(", ") || "all";
      let pts = series.get(label);
      if (!pts) {
        pts = [];
        series.set(label, pts);
      }
      pts.push({ variant: s.variant, value: params[key]!, accuracy: s.accuracy, ci: s.ci });
    }
    for (const pts of series.values()) {
      pts.sort((a, b) =>
        numeric
          ? (a.value as number) - (b.value as number)
          : String(a.value).localeCompare(String(b.value)),
      );
    }
    sweeps.push({
      parameter: key,
      numeric,
      series: [...series].map(([label, points]) => ({ label, points })),
      ...(key === "layer" && layerAuc.length > 0
        ? { layerAuc: [...layerAuc].sort((a, b) => a.layer - b.layer) }
        : {}),
    });
  }
  return sweeps;
}
