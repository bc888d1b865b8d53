import { ActivationsError } from "./errors.ts";

/**
 * Residual-stream activations of one bucket: `[prompts, layers + 1, hidden]` f32, row-major.
 * Index 0 on the layer axis is the embedding output; index k is the output of block k.
 */
export interface Residuals {
  readonly prompts: number;
  /** Number of residual positions per prompt: transformer blocks + 1. */
  readonly layers: number;
  readonly hidden: number;
  readonly data: Float32Array;
}

/** Wraps a flat buffer as {@link Residuals}, checking that the shape matches its length. */
export function createResiduals(
  data: Float32Array,
  shape: readonly [number, number, number],
): Residuals {
  const [prompts, layers, hidden] = shape;
  for (const [i, n] of shape.entries()) {
    if (!Number.isInteger(n) || n < 0)
      throw new ActivationsError(`residual shape axis ${i} is ${n}, not a count`);
  }
  if (prompts * layers * hidden !== data.length) {
    throw new ActivationsError(
      `residual shape [${prompts}, ${layers}, ${hidden}] needs ${prompts * layers * hidden} values, got ${data.length}`,
    );
  }
  return { prompts, layers, hidden, data };
}

/** The `[hidden]` residual of one prompt at one layer (a view, no copy). */
export function residualAt(r: Residuals, prompt: number, layer: number): Float32Array {
  const off = (prompt * r.layers + layer) * r.hidden;
  return r.data.subarray(off, off + r.hidden);
}

/** Throws unless the two buckets share the layer count and hidden size. */
export function assertCompatible(a: Residuals, b: Residuals): void {
  if (a.layers !== b.layers || a.hidden !== b.hidden) {
    throw new ActivationsError(
      `buckets disagree: refuse is [*, ${a.layers}, ${a.hidden}], comply is [*, ${b.layers}, ${b.hidden}]`,
    );
  }
}

/** Throws unless `layer` is a valid index on the layer axis (0 … layers). */
export function assertLayer(layer: number, layers: number): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= layers) {
    throw new ActivationsError(
      `layer ${layer} is out of range: residuals have layers 0..${layers - 1}`,
    );
  }
}
