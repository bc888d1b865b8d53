import {
  type Checkpoint,
  type ResidualWriter,
  resolveWriters,
  WRITER_TARGETS,
  type WriterRule,
  type WriterTarget,
} from "@abl/checkpoint";
import { isFloatDType } from "@abl/tensor";
import type { Directions } from "./direction.ts";
import { PatchError } from "./errors.ts";
import type { PatchMethod } from "./kernels.ts";

/**
 * Ablation strength λ by layer: a constant, one value per layer, or Heretic's tent kernel (λ falls
 * linearly from `max` at `peak` to `min` at distance `width`, and is 0 beyond).
 */
export type Strength =
  | { readonly type: "constant"; readonly value: number }
  | { readonly type: "per-layer"; readonly values: readonly number[] }
  | {
      readonly type: "tent";
      readonly peak: number;
      readonly width: number;
      readonly max: number;
      readonly min: number;
    };

/** Options of {@link buildPlan}. */
export interface PlanOptions {
  /** Target sets to edit; default: every set. */
  readonly targets?: readonly WriterTarget[];
  readonly method?: PatchMethod;
  readonly strength?: Strength;
  /** λ for the embeddings (not a layer); default: the strength's largest value. */
  readonly embedScale?: number;
  /** Write lm_head.weight = original embeddings when they are tied and edited (default true). */
  readonly untie?: boolean;
  /** Explicit writer rules (unknown architectures). */
  readonly rules?: readonly WriterRule[];
}

/** One tensor edit. */
export interface EditOp {
  readonly writer: ResidualWriter;
  readonly lambda: number;
  /** Row of `Directions.rows` used. */
  readonly directionRow: number;
}

/** Everything the patcher will do to a checkpoint. */
export interface PatchPlan {
  readonly method: PatchMethod;
  readonly targets: readonly WriterTarget[];
  readonly strength: Strength;
  readonly embedScale: number;
  /** Tensor name → edit. Tensors not here are copied byte for byte. */
  readonly edits: ReadonlyMap<string, EditOp>;
  /** Name of the embeddings to copy into lm_head.weight, when untying. */
  readonly untieFrom: string | undefined;
  readonly directions: Directions;
}

/** Default λ: 1 everywhere, as the classic orthogonalization. */
export const DEFAULT_STRENGTH: Strength = { type: "constant", value: 1 };

function checkFinite(what: string, x: number): void {
  if (!Number.isFinite(x)) throw new PatchError(`${what} must be a finite number, got ${x}`);
}

/** Validates a {@link Strength} against the layer count. */
export function validateStrength(s: Strength, numLayers: number): void {
  if (s.type === "constant") checkFinite("scale", s.value);
  else if (s.type === "per-layer") {
    if (s.values.length !== numLayers)
      throw new PatchError(`per-layer scales: ${s.values.length} values for ${numLayers} layers`);
    for (const [i, v] of s.values.entries()) checkFinite(`scale of layer ${i}`, v);
  } else {
    for (const k of ["peak", "width", "max", "min"] as const) checkFinite(`kernel ${k}`, s[k]);
    if (s.width <= 0) throw new PatchError(`kernel width must be > 0, got ${s.width}`);
  }
}

/** λ of layer `layer` under `s`. */
export function lambdaAt(s: Strength, layer: number): number {
  if (s.type === "constant") return s.value;
  if (s.type === "per-layer") return s.values[layer]!;
  const d = Math.abs(layer - s.peak);
  if (d > s.width) return 0;
  return s.max + ((s.min - s.max) * d) / s.width;
}

function maxLambda(s: Strength): number {
  if (s.type === "constant") return s.value;
  if (s.type === "per-layer") return Math.max(...s.values);
  return s.max;
}

/**
 * Builds the edit plan: resolves the residual writers through the architecture adapter, keeps the
 * selected targets, picks each one's direction (global, or row layer + 1 of per-layer directions;
 * row 0 for the embeddings) and λ. Writers with λ = 0 are left untouched.
 */
export function buildPlan(
  ck: Checkpoint,
  directions: Directions,
  options: PlanOptions = {},
): PatchPlan {
  const h = ck.config.hiddenSize;
  if (directions.hidden !== h)
    throw new PatchError(`direction has ${directions.hidden} values, but hidden_size is ${h}`);
  const L = ck.config.numLayers;
  const perLayer = directions.rows.length > 1;
  if (perLayer && directions.rows.length !== L + 1) {
    throw new PatchError(
      `per-layer directions: ${directions.rows.length} rows, the model needs layers + 1 = ${L + 1}`,
    );
  }
  const targets = options.targets ?? WRITER_TARGETS;
  for (const t of targets) {
    if (!WRITER_TARGETS.includes(t))
      throw new PatchError(`unknown target "${t}" (known: ${WRITER_TARGETS.join(", ")})`);
  }
  const method = options.method ?? "project";
  if (method !== "project" && method !== "norm-preserving")
    throw new PatchError(`unknown method "${method as string}"`);
  const strength = options.strength ?? DEFAULT_STRENGTH;
  validateStrength(strength, L);
  const embedScale = options.embedScale ?? maxLambda(strength);
  checkFinite("embed scale", embedScale);
  const writers = resolveWriters(ck, options.rules ? { rules: options.rules } : {});
  const edits = new Map<string, EditOp>();
  for (const w of writers) {
    if (!targets.includes(w.target)) continue;
    const info = ck.tensors.get(w.name)!.info;
    if (!isFloatDType(info.dtype)) {
      throw new PatchError(
        `tensor "${w.name}" is ${info.dtype}; only F32, F16 and BF16 writers can be edited (dequantize first)`,
      );
    }
    const lambda = w.layer === undefined ? embedScale : lambdaAt(strength, w.layer);
    if (lambda === 0) continue;
    const directionRow = perLayer ? (w.layer === undefined ? 0 : w.layer + 1) : 0;
    edits.set(w.name, { writer: w, lambda, directionRow });
  }
  const embedEdited = ck.embedName !== undefined && edits.has(ck.embedName);
  const untieFrom =
    embedEdited && ck.tiedEmbeddings && options.untie !== false ? ck.embedName : undefined;
  return { method, targets, strength, embedScale, edits, untieFrom, directions };
}
