import { GraphBuilder } from "./graph-builder.ts";
import type { ModelSpec } from "./model-config.ts";
import { type OnnxModel, OnnxType } from "./onnx-proto.ts";
import { ropeTables } from "./rope.ts";

/**
 * An inference-time intervention baked into the graph.
 * - `ablate`: remove the component along unit vector `direction` from the residual stream after
 *   the embedding and after every attention and MLP write, the same effect as orthogonalizing the
 *   embedding rows and the o_proj / down_proj outputs against it.
 * - `steer`: add `alpha * direction` to the residual at capture index `layer` (0 = embedding
 *   output, i = output of block i), for every position.
 */
export type Intervention =
  | { readonly type: "ablate"; readonly direction: Float32Array }
  | {
      readonly type: "steer";
      readonly layer: number;
      readonly direction: Float32Array;
      readonly alpha: number;
    };

/** Source of float32 weights by HF tensor name, with their shapes. */
export interface WeightSource {
  get(name: string): { readonly shape: readonly number[]; readonly data: Float32Array } | undefined;
}

/** Graph input and output names, shared by the builder and the runner. */
export const GraphNames = {
  inputIds: "input_ids",
  positionIds: "position_ids",
  attnBias: "attn_bias",
  logitsIndex: "logits_index",
  logits: "logits",
  pastKey: (i: number) => `past_key_${i}`,
  pastValue: (i: number) => `past_value_${i}`,
  presentKey: (i: number) => `present_key_${i}`,
  presentValue: (i: number) => `present_value_${i}`,
  hidden: (i: number) => `hidden_${i}`,
  hiddenAt: (i: number) => `hidden_at_${i}`,
} as const;

/** Options for {@link buildModelGraph}. */
export interface ModelGraphOptions {
  /** RoPE table length: the longest sequence (prompt + generated) the session accepts. */
  readonly maxPositions: number;
  readonly intervention?: Intervention | undefined;
}

/**
 * Builds the decoder as an ONNX graph. Layout: the residual stream is kept 2-D `[B*S, D]` so
 * every projection is one Gemm against the HF `[out, in]` weight (transB, no transpose copy);
 * q/k/v and gate/up are fused into one Gemm each. Attention uses plain MatMul/Softmax with an
 * additive bias `[B, 1, G*S, T]` computed by the caller (padding, causality and sliding window
 * in one place), grouped-query heads by folding the G query heads of a kv head into rows.
 *
 * Inputs: input_ids, position_ids `[B, S]` int64; attn_bias; logits_index `[B, K]` int64 (which
 * positions get logits); past_key_i / past_value_i `[B, kvH, P, hd]`. Outputs: logits `[B, K, V]`,
 * present_key_i / present_value_i `[B, kvH, S, hd]` (the new positions' keys and values only), hidden_0..hidden_L `[B*S, D]`, and
 * hidden_at_0..hidden_at_L `[B, K, D]` (the residual at the logits_index positions).
 *
 * Throws when a weight is missing or has the wrong shape (message names it and both shapes).
 */
export function buildModelGraph(
  spec: ModelSpec,
  weights: WeightSource,
  opts: ModelGraphOptions,
): OnnxModel {
  const g = new GraphBuilder();
  const D = spec.hiddenSize;
  const H = spec.numHeads;
  const KV = spec.numKvHeads;
  const hd = spec.headDim;
  const I = spec.intermediateSize;
  const V = spec.vocabSize;
  const L = spec.numLayers;

  const w = (name: string, shape: readonly number[]): Float32Array => {
    const t = weights.get(name);
    if (!t)
      throw new WeightShapeError(`missing weight "${name}" (expected shape [${shape.join(", ")}])`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new WeightShapeError(
        `weight "${name}" has shape [${t.shape.join(", ")}], config.json implies [${shape.join(", ")}]`,
      );
    return t.data;
  };
  const concatRows = (parts: Float32Array[]): Float32Array => {
    const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };

  const ids = g.input(GraphNames.inputIds, OnnxType.INT64, ["batch", "seq"]);
  const pos = g.input(GraphNames.positionIds, OnnxType.INT64, ["batch", "seq"]);
  const bias = g.input(GraphNames.attnBias, OnnxType.FLOAT, ["batch", 1, "gseq", "total"]);
  const logitsIndex = g.input(GraphNames.logitsIndex, OnnxType.INT64, ["batch", "k"]);

  const idsShape = g.op("Shape", [ids]);
  const shapeBSHhd = g.op("Concat", [idsShape, g.i64([H, hd])], { axis: 0 });
  const shapeBSKVhd = g.op("Concat", [idsShape, g.i64([KV, hd])], { axis: 0 });
  const shapeBSD = g.op("Concat", [idsShape, g.i64([D])], { axis: 0 });

  // RoPE: gather cos/sin rows by position, broadcast over heads: [B, S, 1, hd].
  const { cos, sin } = ropeTables(spec, opts.maxPositions);
  const cosT = g.weight("rope_cos", [opts.maxPositions, hd], cos);
  const sinT = g.weight("rope_sin", [opts.maxPositions, hd], sin);
  const cosB = g.op("Unsqueeze", [g.op("Gather", [cosT, pos], { axis: 0 }), g.i64([2])]);
  const sinB = g.op("Unsqueeze", [g.op("Gather", [sinT, pos], { axis: 0 }), g.i64([2])]);
  const halfSplit = g.i64([hd / 2, hd / 2]);
  const rope = (x: string): string => {
    const [x1, x2] = g.opN("Split", [x, halfSplit], 2, { axis: -1 }) as [string, string];
    const rot = g.op("Concat", [g.op("Neg", [x2]), x1], { axis: -1 });
    return g.op("Add", [g.op("Mul", [x, cosB]), g.op("Mul", [rot, sinB])]);
  };

  // Interventions.
  const iv = opts.intervention;
  let ablate = (h: string): string => h;
  if (iv?.type === "ablate") {
    if (iv.direction.length !== D)
      throw new WeightShapeError(
        `ablation direction has ${iv.direction.length} values, hidden size is ${D}`,
      );
    const unit = normalize(iv.direction);
    const rCol = g.weight("ablate_r_col", [D, 1], unit);
    const rRow = g.weight("ablate_r_row", [1, D], unit);
    ablate = (h: string) => g.op("Sub", [h, g.op("MatMul", [g.op("MatMul", [h, rCol]), rRow])]);
  }
  let steerAt = -1;
  let steerVec = "";
  if (iv?.type === "steer") {
    if (iv.direction.length !== D)
      throw new WeightShapeError(
        `steering direction has ${iv.direction.length} values, hidden size is ${D}`,
      );
    if (!Number.isInteger(iv.layer) || iv.layer < 0 || iv.layer > L)
      throw new WeightShapeError(`steering layer ${iv.layer} is outside 0..${L}`);
    steerAt = iv.layer;
    steerVec = g.weight(
      "steer_vec",
      [D],
      iv.direction.map((x) => x * iv.alpha),
    );
  }
  const finishResidual = (h: string, index: number): string => {
    const out = GraphNames.hidden(index);
    if (index === steerAt) return g.opNamed("Add", [h, steerVec], out);
    return g.opNamed("Identity", [h], out);
  };

  const embedW = w("model.embed_tokens.weight", [V, D]);
  const embed = g.weight("model.embed_tokens.weight", [V, D], embedW);
  const flatIds = g.op("Reshape", [ids, g.i64([-1])]);
  let h = finishResidual(ablate(g.op("Gather", [embed, flatIds], { axis: 0 })), 0);

  const rms = (x: string, weight: string): string =>
    g.op("SimplifiedLayerNormalization", [x, weight], {
      axis: -1,
      epsilon: spec.rmsNormEps,
      stash_type: 1,
    });
  const qScale = g.f32([1 / Math.sqrt(hd)], []);
  const qkvOut = (H + 2 * KV) * hd;

  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    const inNorm = g.weight(
      `${p}.input_layernorm.weight`,
      [D],
      w(`${p}.input_layernorm.weight`, [D]),
    );
    const x = rms(h, inNorm);
    const qkvW = g.weight(
      `${p}.self_attn.qkv_proj.weight`,
      [qkvOut, D],
      concatRows([
        w(`${p}.self_attn.q_proj.weight`, [H * hd, D]),
        w(`${p}.self_attn.k_proj.weight`, [KV * hd, D]),
        w(`${p}.self_attn.v_proj.weight`, [KV * hd, D]),
      ]),
    );
    const qkvInputs = [x, qkvW];
    if (spec.qkvBias)
      qkvInputs.push(
        g.weight(
          `${p}.self_attn.qkv_proj.bias`,
          [qkvOut],
          concatRows([
            w(`${p}.self_attn.q_proj.bias`, [H * hd]),
            w(`${p}.self_attn.k_proj.bias`, [KV * hd]),
            w(`${p}.self_attn.v_proj.bias`, [KV * hd]),
          ]),
        ),
      );
    const qkv = g.op("Gemm", qkvInputs, { transB: 1 });
    const [q2, k2, v2] = g.opN("Split", [qkv, g.i64([H * hd, KV * hd, KV * hd])], 3, {
      axis: 1,
    }) as [string, string, string];
    let q = g.op("Reshape", [q2, shapeBSHhd]);
    let k = g.op("Reshape", [k2, shapeBSKVhd]);
    const v = g.op("Reshape", [v2, shapeBSKVhd]);
    if (spec.qkNorm) {
      q = rms(
        q,
        g.weight(`${p}.self_attn.q_norm.weight`, [hd], w(`${p}.self_attn.q_norm.weight`, [hd])),
      );
      k = rms(
        k,
        g.weight(`${p}.self_attn.k_norm.weight`, [hd], w(`${p}.self_attn.k_norm.weight`, [hd])),
      );
    }
    q = g.op("Mul", [rope(q), qScale]);
    k = rope(k);
    // [B, S, h, hd] → [B, h, S, hd]; the new keys and values are graph outputs: the caller
    // appends them to its own cache, so no step copies the whole past (a Concat of past and new
    // K/V cost as much as the attention itself at 600-token contexts, measured).
    const qT = g.op("Transpose", [q], { perm: [0, 2, 1, 3] });
    const kT = g.opNamed("Transpose", [k], GraphNames.presentKey(l), { perm: [0, 2, 1, 3] });
    const vT = g.opNamed("Transpose", [v], GraphNames.presentValue(l), { perm: [0, 2, 1, 3] });
    g.outputs.push({ name: kT, type: OnnxType.FLOAT, shape: ["batch", KV, "seq", hd] });
    g.outputs.push({ name: vT, type: OnnxType.FLOAT, shape: ["batch", KV, "seq", hd] });
    const pastK = g.input(GraphNames.pastKey(l), OnnxType.FLOAT, ["batch", KV, "past", hd]);
    const pastV = g.input(GraphNames.pastValue(l), OnnxType.FLOAT, ["batch", KV, "past", hd]);
    // Group the G query heads of each kv head into rows: [B, KV, G*S, hd]. Scores against the
    // past and against the new keys are computed apart and joined (small: [B, KV, G*S, P+S]).
    const qG = g.op("Reshape", [qT, g.i64([0, KV, -1, hd])]);
    const scoresPast = g.op("MatMul", [qG, g.op("Transpose", [pastK], { perm: [0, 1, 3, 2] })]);
    const scoresNew = g.op("MatMul", [qG, g.op("Transpose", [kT], { perm: [0, 1, 3, 2] })]);
    const scores = g.op("Add", [g.op("Concat", [scoresPast, scoresNew], { axis: -1 }), bias]);
    const probs = g.op("Softmax", [scores], { axis: -1 });
    const pastLen = g.op("Slice", [g.op("Shape", [pastK]), g.i64([2]), g.i64([3])]);
    const probsPast = g.op("Slice", [probs, g.i64([0]), pastLen, g.i64([3])]);
    const probsNew = g.op("Slice", [probs, pastLen, g.i64([Number.MAX_SAFE_INTEGER]), g.i64([3])]);
    const ctx = g.op("Add", [g.op("MatMul", [probsPast, pastV]), g.op("MatMul", [probsNew, vT])]);
    const ctxT = g.op("Transpose", [g.op("Reshape", [ctx, g.i64([0, H, -1, hd])])], {
      perm: [0, 2, 1, 3],
    });
    const ctx2 = g.op("Reshape", [ctxT, g.i64([-1, H * hd])]);
    const oInputs = [
      ctx2,
      g.weight(
        `${p}.self_attn.o_proj.weight`,
        [D, H * hd],
        w(`${p}.self_attn.o_proj.weight`, [D, H * hd]),
      ),
    ];
    if (spec.oBias)
      oInputs.push(
        g.weight(`${p}.self_attn.o_proj.bias`, [D], w(`${p}.self_attn.o_proj.bias`, [D])),
      );
    const attnOut = g.op("Gemm", oInputs, { transB: 1 });
    h = ablate(g.op("Add", [h, attnOut]));

    const postNorm = g.weight(
      `${p}.post_attention_layernorm.weight`,
      [D],
      w(`${p}.post_attention_layernorm.weight`, [D]),
    );
    const x2 = rms(h, postNorm);
    const gateUpW = g.weight(
      `${p}.mlp.gate_up_proj.weight`,
      [2 * I, D],
      concatRows([w(`${p}.mlp.gate_proj.weight`, [I, D]), w(`${p}.mlp.up_proj.weight`, [I, D])]),
    );
    const gu = g.op("Gemm", [x2, gateUpW], { transB: 1 });
    const [gate, up] = g.opN("Split", [gu, g.i64([I, I])], 2, { axis: 1 }) as [string, string];
    const act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up]);
    const downW = g.weight(
      `${p}.mlp.down_proj.weight`,
      [D, I],
      w(`${p}.mlp.down_proj.weight`, [D, I]),
    );
    const mlpOut = g.op("Gemm", [act, downW], { transB: 1 });
    h = finishResidual(ablate(g.op("Add", [h, mlpOut])), l + 1);
  }

  const finalNorm = g.weight("model.norm.weight", [D], w("model.norm.weight", [D]));
  const normed = g.op("Reshape", [rms(h, finalNorm), shapeBSD]);
  const picked = g.op("GatherND", [normed, g.op("Unsqueeze", [logitsIndex, g.i64([-1])])], {
    batch_dims: 1,
  });
  const lmHead = spec.tieWordEmbeddings
    ? embed
    : g.weight("lm_head.weight", [V, D], w("lm_head.weight", [V, D]));
  const flatLogits = g.op("Gemm", [g.op("Reshape", [picked, g.i64([-1, D])]), lmHead], {
    transB: 1,
  });
  const logitsShape = g.op("Concat", [g.op("Shape", [logitsIndex]), g.i64([V])], { axis: 0 });
  g.opNamed("Reshape", [flatLogits, logitsShape], GraphNames.logits);
  g.outputs.push({ name: GraphNames.logits, type: OnnxType.FLOAT, shape: ["batch", "k", V] });
  for (let i = 0; i <= L; i++)
    g.outputs.push({ name: GraphNames.hidden(i), type: OnnxType.FLOAT, shape: ["tokens", D] });
  // The residual at the logits_index positions only: capture fetches these, so it copies
  // B*K*D floats per layer out of onnxruntime instead of the whole B*S*D.
  const index3 = g.op("Unsqueeze", [logitsIndex, g.i64([-1])]);
  for (let i = 0; i <= L; i++) {
    const h3 = g.op("Reshape", [GraphNames.hidden(i), shapeBSD]);
    g.opNamed("GatherND", [h3, index3], GraphNames.hiddenAt(i), { batch_dims: 1 });
    g.outputs.push({
      name: GraphNames.hiddenAt(i),
      type: OnnxType.FLOAT,
      shape: ["batch", "k", D],
    });
  }
  return g.build(`${spec.family}_decoder`, { "": 17 });
}

/** A weight is missing or its shape disagrees with config.json. */
export class WeightShapeError extends Error {
  override readonly name = "WeightShapeError";
}

function normalize(v: Float32Array): Float32Array {
  let n = 0;
  for (const x of v) n += x * x;
  n = Math.sqrt(n);
  if (!(n > 0)) throw new WeightShapeError("intervention direction has zero norm");
  return v.map((x) => x / n);
}
