import type { TrialRecord } from "./records.ts";
import { createRng } from "./rng.ts";
import type { LayerAuc, VariantInfo } from "./sweeps.ts";

/** One synthetic variant: `skill` shifts its log-odds of passing every task. */
export interface SyntheticVariant {
  readonly name: string;
  readonly skill: number;
  readonly params?: Readonly<Record<string, number | string>>;
}

/** Options of {@link generateSyntheticRecords}. */
export interface SyntheticOptions {
  readonly variants: readonly SyntheticVariant[];
  readonly tasks: number;
  readonly replicas: number;
  readonly seed?: number;
  /** Probability of an infra outcome (environment_error / llm_error) per trial. */
  readonly infraRate?: number;
  /** Mean parse errors per trial. */
  readonly parseErrorRate?: number;
}

/** Records plus the variant parameters, ready for `buildReport`. */
export interface SyntheticResult {
  readonly records: TrialRecord[];
  readonly variants: VariantInfo[];
}

const logistic = (x: number) => 1 / (1 + Math.exp(-x));

/**
 * Deterministic synthetic trial records for tests and demos: each task has a difficulty, each
 * variant a skill; pass probability = logistic(skill − difficulty). Failures are split between
 * `failed` and `agent_timeout`; infra outcomes have a null reward.
 */
export function generateSyntheticRecords(options: SyntheticOptions): SyntheticResult {
  const rng = createRng(options.seed ?? 7);
  const infraRate = options.infraRate ?? 0.03;
  const parseRate = options.parseErrorRate ?? 0.4;
  const difficulty = Array.from({ length: options.tasks }, () => (rng.next() - 0.35) * 6);
  // A few tasks that provoke many parse errors, so the outlier table has something to show.
  const parseHeavy = new Set(
    Array.from({ length: Math.max(1, Math.floor(options.tasks / 25)) }, () =>
      rng.int(options.tasks),
    ),
  );
  const records: TrialRecord[] = [];
  const width = String(options.tasks).length;
  for (const v of options.variants) {
    for (let t = 0; t < options.tasks; t++) {
      const taskId = `task-${String(t + 1).padStart(width, "0")}`;
      for (let r = 0; r < options.replicas; r++) {
        const turns = 3 + rng.int(30);
        let parseErrors = 0;
        const lambda = parseHeavy.has(t) ? parseRate * 8 : parseRate;
        for (let k = 0; k < 4 * Math.ceil(lambda + 1); k++)
          if (rng.next() < lambda / (4 * Math.ceil(lambda + 1))) parseErrors++;
        const noCmdTurns = rng.next() < 0.1 ? 1 + rng.int(2) : 0;
        const u = rng.next();
        let outcome: string;
        let reward: number | null;
        if (u < infraRate) {
          outcome = rng.next() < 0.5 ? "environment_error" : "llm_error";
          reward = null;
        } else if (rng.next() < logistic(v.skill - difficulty[t]!)) {
          outcome = "passed";
          reward = 1;
        } else {
          outcome = rng.next() < 0.8 ? "failed" : "agent_timeout";
          reward = 0;
        }
        records.push({
          variant: v.name,
          taskId,
          replica: r,
          reward,
          outcome,
          turns,
          parseErrors,
          noCmdTurns,
        });
      }
    }
  }
  return {
    records,
    variants: options.variants.map((v) => ({ variant: v.name, params: v.params ?? {} })),
  };
}

/**
 * A demo sweep: a base model and abliterated variants at several layers, with a per-layer AUC
 * curve peaking mid-depth (as direction AUCs typically do).
 */
export function syntheticSweep(
  seed = 7,
  tasks = 40,
  replicas = 5,
): SyntheticResult & { layerAuc: LayerAuc[] } {
  const layers = [4, 8, 12, 16, 20, 24];
  const variants: SyntheticVariant[] = [
    { name: "base", skill: -0.6, params: {} },
    ...layers.map((layer) => ({
      name: `abl-L${layer}`,
      skill: -0.6 + 0.7 * Math.exp(-(((layer - 14) / 6) ** 2)),
      params: { layer },
    })),
  ];
  const result = generateSyntheticRecords({ variants, tasks, replicas, seed });
  const layerAuc = Array.from({ length: 28 }, (_, layer) => ({
    layer,
    auc: 0.5 + 0.48 * Math.exp(-(((layer - 13) / 7) ** 2)),
  }));
  return { ...result, layerAuc };
}
