import type { ModelSpec } from "./model-config.ts";

const f = Math.fround;

/**
 * RoPE inverse frequencies and the cos/sin scale, computed the way transformers does it
 * (`modeling_rope_utils`), rounding to float32 at the same steps so tables match within an ulp.
 */
export function ropeInvFreq(spec: ModelSpec): { invFreq: Float32Array; attentionScale: number } {
  const dim = spec.headDim;
  const half = dim / 2;
  const base = spec.ropeTheta;
  const posFreqs = new Float64Array(half);
  for (let i = 0; i < half; i++) posFreqs[i] = f(base ** f((2 * i) / dim));
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = f(1 / (posFreqs[i] as number));
  const s = spec.ropeScaling;
  switch (s.type) {
    case "default":
      return { invFreq: inv, attentionScale: 1 };
    case "linear":
      for (let i = 0; i < half; i++) inv[i] = f((inv[i] as number) / s.factor);
      return { invFreq: inv, attentionScale: 1 };
    case "llama3": {
      const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
      const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
      for (let i = 0; i < half; i++) {
        const x = inv[i] as number;
        const wavelen = f((2 * Math.PI) / x);
        if (wavelen > lowWavelen) inv[i] = f(x / s.factor);
        else if (wavelen >= highWavelen) {
          const smooth = f(
            f(s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) /
              (s.highFreqFactor - s.lowFreqFactor),
          );
          inv[i] = f(f(f(1 - smooth) * f(x / s.factor)) + f(smooth * x));
        }
      }
      return { invFreq: inv, attentionScale: 1 };
    }
    case "yarn": {
      const getMscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      let attentionScale = s.attentionFactor;
      if (attentionScale === undefined)
        attentionScale =
          s.mscale && s.mscaleAllDim
            ? getMscale(s.factor, s.mscale) / getMscale(s.factor, s.mscaleAllDim)
            : getMscale(s.factor);
      const corrDim = (rot: number) =>
        (dim * Math.log(s.originalMaxPositionEmbeddings / (rot * 2 * Math.PI))) /
        (2 * Math.log(base));
      let low = corrDim(s.betaFast);
      let high = corrDim(s.betaSlow);
      if (s.truncate) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001;
      for (let i = 0; i < half; i++) {
        const ramp = Math.min(1, Math.max(0, f(f(i - low) / f(high - low))));
        const extrapFactor = f(1 - f(ramp));
        const pf = posFreqs[i] as number;
        const interp = f(1 / f(s.factor * pf));
        const extrap = f(1 / pf);
        inv[i] = f(f(interp * f(1 - extrapFactor)) + f(extrap * extrapFactor));
      }
      return { invFreq: inv, attentionScale };
    }
  }
}

/**
 * cos and sin tables `[positions, headDim]` (each half repeated, as HF's `cat((freqs, freqs))`)
 * scaled by the RoPE attention scale.
 */
export function ropeTables(
  spec: ModelSpec,
  positions: number,
): { cos: Float32Array; sin: Float32Array } {
  const { invFreq, attentionScale } = ropeInvFreq(spec);
  const dim = spec.headDim;
  const half = dim / 2;
  const cos = new Float32Array(positions * dim);
  const sin = new Float32Array(positions * dim);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f(p * (invFreq[i] as number));
      const c = f(f(Math.cos(angle)) * attentionScale);
      const s = f(f(Math.sin(angle)) * attentionScale);
      cos[p * dim + i] = c;
      cos[p * dim + half + i] = c;
      sin[p * dim + i] = s;
      sin[p * dim + half + i] = s;
    }
  }
  return { cos, sin };
}
