/**
 * Dequantization of ggml tensor data to f32, bit-for-bit as ggml's reference `dequantize_row_*`
 * functions (and the `gguf` Python package) compute it: every intermediate product is rounded to
 * f32 in the same order. JavaScript computes in f64; one f32 product or sum evaluated in f64 and
 * rounded back with `Math.fround` is exactly the f32 result (53 ≥ 2·24 + 2 bits), so each step
 * below is wrapped in `fround` where ggml would hold an f32.
 */
import type { GgmlSupportedType } from "./gguf-ggml-types.ts";
import { GgufFormatError, GgufUnsupportedTypeError } from "./gguf-reader.ts";

const fround = Math.fround;

/** IEEE half to number (exact). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}

/** Lookup table of all 65536 half values, built once on first use. */
let halfTable: Float32Array | undefined;
function halves(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = f16ToF32(i);
  }
  return halfTable;
}

function dequantQ8_0(src: Uint8Array, out: Float32Array): void {
  const h = halves();
  const blocks = out.length / 32;
  for (let b = 0; b < blocks; b++) {
    const p = b * 34;
    const d = h[src[p]! | (src[p + 1]! << 8)]!;
    const o = b * 32;
    for (let j = 0; j < 32; j++) out[o + j] = d * ((src[p + 2 + j]! << 24) >> 24);
  }
}

function dequantQ4_0(src: Uint8Array, out: Float32Array): void {
  const h = halves();
  const blocks = out.length / 32;
  for (let b = 0; b < blocks; b++) {
    const p = b * 18;
    const d = h[src[p]! | (src[p + 1]! << 8)]!;
    const o = b * 32;
    for (let j = 0; j < 16; j++) {
      const q = src[p + 2 + j]!;
      out[o + j] = d * ((q & 0xf) - 8);
      out[o + j + 16] = d * ((q >> 4) - 8);
    }
  }
}

function dequantQ4_1(src: Uint8Array, out: Float32Array): void {
  const h = halves();
  const blocks = out.length / 32;
  for (let b = 0; b < blocks; b++) {
    const p = b * 20;
    const d = h[src[p]! | (src[p + 1]! << 8)]!;
    const m = h[src[p + 2]! | (src[p + 3]! << 8)]!;
    const o = b * 32;
    for (let j = 0; j < 16; j++) {
      const q = src[p + 4 + j]!;
      out[o + j] = fround(d * (q & 0xf)) + m;
      out[o + j + 16] = fround(d * (q >> 4)) + m;
    }
  }
}

function dequantQ5(src: Uint8Array, out: Float32Array, withMin: boolean): void {
  const h = halves();
  const blockBytes = withMin ? 24 : 22;
  const blocks = out.length / 32;
  for (let b = 0; b < blocks; b++) {
    const p = b * blockBytes;
    const d = h[src[p]! | (src[p + 1]! << 8)]!;
    const m = withMin ? h[src[p + 2]! | (src[p + 3]! << 8)]! : 0;
    const hp = p + (withMin ? 4 : 2);
    // 32 fifth bits, element j's in bit j (little-endian u32).
    const qh = (src[hp]! | (src[hp + 1]! << 8) | (src[hp + 2]! << 16) | (src[hp + 3]! << 24)) >>> 0;
    const qs = hp + 4;
    const o = b * 32;
    for (let j = 0; j < 16; j++) {
      const lo = (src[qs + j]! & 0xf) | (((qh >>> j) & 1) << 4);
      const hi = (src[qs + j]! >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      if (withMin) {
        out[o + j] = fround(d * lo) + m;
        out[o + j + 16] = fround(d * hi) + m;
      } else {
        out[o + j] = d * (lo - 16);
        out[o + j + 16] = d * (hi - 16);
      }
    }
  }
}

/** Q2_K: 16 groups of 16 with 4-bit scale and min each; 2-bit values four to a byte. */
function dequantQ2_K(src: Uint8Array, out: Float32Array): void {
  const h = halves();
  const blocks = out.length / 256;
  for (let b = 0; b < blocks; b++) {
    const p = b * 84;
    const qs = p + 16;
    const d = h[src[p + 80]! | (src[p + 81]! << 8)]!;
    const dmin = h[src[p + 82]! | (src[p + 83]! << 8)]!;
    const o = b * 256;
    for (let half = 0; half < 2; half++) {
      for (let shift = 0; shift < 4; shift++) {
        for (let l = 0; l < 32; l++) {
          const i = half * 128 + shift * 32 + l;
          const sc = src[p + (i >> 4)]!;
          const dl = fround(d * (sc & 0xf));
          const ml = fround(dmin * (sc >> 4));
          out[o + i] = fround(dl * ((src[qs + half * 32 + l]! >> (2 * shift)) & 3)) - ml;
        }
      }
    }
  }
}

/** Q3_K: 16 groups of 16 with signed 6-bit scales; 2 low bits plus a high-bit mask per value. */
function dequantQ3_K(src: Uint8Array, out: Float32Array): void {
  const h = halves();
  const blocks = out.length / 256;
  const scale = new Float32Array(16);
  for (let b = 0; b < blocks; b++) {
    const p = b * 110;
    const hmask = p;
    const qs = p + 32;
    const sc = p + 96;
    const d = h[src[p + 108]! | (src[p + 109]! << 8)]!;
    for (let j = 0; j < 16; j++) {
      const low = j < 8 ? src[sc + j]! & 0xf : src[sc + j - 8]! >> 4;
      const high = (src[sc + 8 + (j % 4)]! >> (2 * (j >> 2))) & 3;
      scale[j] = d * ((((low | (high << 4)) << 24) >> 24) - 32);
    }
    const o = b * 256;
    for (let half = 0; half < 2; half++) {
      for (let shift = 0; shift < 4; shift++) {
        for (let l = 0; l < 32; l++) {
          const i = half * 128 + shift * 32 + l;
          const low = (src[qs + half * 32 + l]! >> (2 * shift)) & 3;
          // The mask's bit (i / 32) of byte l set means no offset; clear means subtract 4.
          const set = (src[hmask + l]! >> (i >> 5)) & 1;
          out[o + i] = scale[i >> 4]! * (low - (set ? 0 : 4));
        }
      }
    }
  }
}

/** ggml's get_scale_min_k4: the j-th 6-bit scale and min packed in 12 bytes at `s`. */
function scaleMinK4(j: number, src: Uint8Array, s: number): [number, number] {
  if (j < 4) return [src[s + j]! & 63, src[s + j + 4]! & 63];
  const sc = (src[s + j + 4]! & 0xf) | ((src[s + j - 4]! >> 6) << 4);
  const m = (src[s + j + 4]! >> 4) | ((src[s + j]! >> 6) << 4);
  return [sc, m];
}

function dequantQ4_K(src: Uint8Array, out: Float32Array): void {
  const h = halves();
  const blocks = out.length / 256;
  for (let b = 0; b < blocks; b++) {
    const p = b * 144;
    const d = h[src[p]! | (src[p + 1]! << 8)]!;
    const dmin = h[src[p + 2]! | (src[p + 3]! << 8)]!;
    const s = p + 4;
    let q = p + 16;
    let o = b * 256;
    for (let is = 0; is < 8; is += 2) {
      const [sc1, m1] = scaleMinK4(is, src, s);
      const [sc2, m2] = scaleMinK4(is + 1, src, s);
      const d1 = fround(d * sc1);
      const min1 = fround(dmin * m1);
      const d2 = fround(d * sc2);
      const min2 = fround(dmin * m2);
      for (let l = 0; l < 32; l++) out[o + l] = fround(d1 * (src[q + l]! & 0xf)) - min1;
      for (let l = 0; l < 32; l++) out[o + 32 + l] = fround(d2 * (src[q + l]! >> 4)) - min2;
      q += 32;
      o += 64;
    }
  }
}

function dequantQ5_K(src: Uint8Array, out: Float32Array): void {
  const h = halves();
  const blocks = out.length / 256;
  for (let b = 0; b < blocks; b++) {
    const p = b * 176;
    const d = h[src[p]! | (src[p + 1]! << 8)]!;
    const dmin = h[src[p + 2]! | (src[p + 3]! << 8)]!;
    const s = p + 4;
    const qh = p + 16;
    let ql = p + 48;
    let o = b * 256;
    let u1 = 1;
    let u2 = 2;
    for (let is = 0; is < 8; is += 2) {
      const [sc1, m1] = scaleMinK4(is, src, s);
      const [sc2, m2] = scaleMinK4(is + 1, src, s);
      const d1 = fround(d * sc1);
      const min1 = fround(dmin * m1);
      const d2 = fround(d * sc2);
      const min2 = fround(dmin * m2);
      for (let l = 0; l < 32; l++) {
        out[o + l] = fround(d1 * ((src[ql + l]! & 0xf) + (src[qh + l]! & u1 ? 16 : 0))) - min1;
      }
      for (let l = 0; l < 32; l++) {
        out[o + 32 + l] = fround(d2 * ((src[ql + l]! >> 4) + (src[qh + l]! & u2 ? 16 : 0))) - min2;
      }
      ql += 32;
      o += 64;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

function dequantQ6_K(src: Uint8Array, out: Float32Array): void {
  const h = halves();
  const blocks = out.length / 256;
  for (let b = 0; b < blocks; b++) {
    const p = b * 210;
    let ql = p;
    let qh = p + 128;
    let sc = p + 192;
    const d = h[src[p + 208]! | (src[p + 209]! << 8)]!;
    let o = b * 256;
    for (let n = 0; n < 2; n++) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const hb = src[qh + l]!;
        const q1 = ((src[ql + l]! & 0xf) | ((hb & 3) << 4)) - 32;
        const q2 = ((src[ql + l + 32]! & 0xf) | (((hb >> 2) & 3) << 4)) - 32;
        const q3 = ((src[ql + l]! >> 4) | (((hb >> 4) & 3) << 4)) - 32;
        const q4 = ((src[ql + l + 32]! >> 4) | (((hb >> 6) & 3) << 4)) - 32;
        out[o + l] = fround(d * ((src[sc + is]! << 24) >> 24)) * q1;
        out[o + l + 32] = fround(d * ((src[sc + is + 2]! << 24) >> 24)) * q2;
        out[o + l + 64] = fround(d * ((src[sc + is + 4]! << 24) >> 24)) * q3;
        out[o + l + 96] = fround(d * ((src[sc + is + 6]! << 24) >> 24)) * q4;
      }
      o += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

/**
 * Dequantizes `elements` values of ggml type `type` from `src` into a new Float32Array.
 * `src` must hold exactly the bytes of those elements.
 */
export function dequantizeGgml(type: string, src: Uint8Array, elements: number): Float32Array {
  const out = new Float32Array(elements);
  const t = type as GgmlSupportedType;
  const expect = (blockElements: number, blockBytes: number) => {
    if (
      elements % blockElements !== 0 ||
      src.byteLength !== (elements / blockElements) * blockBytes
    ) {
      throw new GgufFormatError(
        `${type}: ${src.byteLength} bytes do not hold ${elements} values (blocks of ${blockElements} in ${blockBytes} bytes)`,
      );
    }
  };
  switch (t) {
    case "F32": {
      expect(1, 4);
      const v = new DataView(src.buffer, src.byteOffset, src.byteLength);
      for (let i = 0; i < elements; i++) out[i] = v.getFloat32(i * 4, true);
      return out;
    }
    case "F16": {
      expect(1, 2);
      const h = halves();
      for (let i = 0; i < elements; i++) out[i] = h[src[2 * i]! | (src[2 * i + 1]! << 8)]!;
      return out;
    }
    case "BF16": {
      expect(1, 2);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < elements; i++)
        u[i] = ((src[2 * i]! | (src[2 * i + 1]! << 8)) << 16) >>> 0;
      return out;
    }
    case "Q8_0":
      expect(32, 34);
      dequantQ8_0(src, out);
      return out;
    case "Q4_0":
      expect(32, 18);
      dequantQ4_0(src, out);
      return out;
    case "Q4_1":
      expect(32, 20);
      dequantQ4_1(src, out);
      return out;
    case "Q5_0":
      expect(32, 22);
      dequantQ5(src, out, false);
      return out;
    case "Q5_1":
      expect(32, 24);
      dequantQ5(src, out, true);
      return out;
    case "Q2_K":
      expect(256, 84);
      dequantQ2_K(src, out);
      return out;
    case "Q3_K":
      expect(256, 110);
      dequantQ3_K(src, out);
      return out;
    case "Q4_K":
      expect(256, 144);
      dequantQ4_K(src, out);
      return out;
    case "Q5_K":
      expect(256, 176);
      dequantQ5_K(src, out);
      return out;
    case "Q6_K":
      expect(256, 210);
      dequantQ6_K(src, out);
      return out;
    default:
      throw new GgufUnsupportedTypeError(`cannot dequantize ggml type ${type}`);
  }
}
