import { DTypeError } from "./errors.ts";

/**
 * Element size in bytes of every safetensors dtype this library accepts. Only F32, F16 and BF16
 * are decoded; the others pass through byte for byte.
 */
export const DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
  C64: 8,
} as const;

/** A safetensors dtype name. */
export type DType = keyof typeof DTYPE_SIZES;

/** The floating dtypes with codecs to and from float32. */
export type FloatDType = "F32" | "F16" | "BF16";

/** True when `s` names a dtype of {@link DTYPE_SIZES}. */
export function isDType(s: string): s is DType {
  return Object.hasOwn(DTYPE_SIZES, s);
}

/** True for the dtypes that {@link decodeToF32} and {@link encodeFromF32} handle. */
export function isFloatDType(d: string): d is FloatDType {
  return d === "F32" || d === "F16" || d === "BF16";
}

/** Bytes per element of `dtype`; throws {@link DTypeError} on an unknown name. */
export function dtypeSize(dtype: string): number {
  if (!isDType(dtype)) throw new DTypeError(`unknown dtype "${dtype}"`);
  return DTYPE_SIZES[dtype];
}

// One scratch word shared by the scalar conversions below.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** bf16 bits → float32 value (exact). */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

/**
 * float32 value → bf16 bits, rounding to nearest with ties to even. NaN stays NaN (quietened, sign
 * kept); ±Inf and values that round past the largest finite bf16 become ±Inf, as IEEE rounding says.
 */
export function f32ToBf16(value: number): number {
  scratchF32[0] = value;
  return f32BitsToBf16(scratchU32[0]!);
}

function f32BitsToBf16(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x0040) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f16 bits → float32 value (exact, subnormals included). */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * float32 value → f16 bits with round-to-nearest-even, including the subnormal range and overflow
 * to ±Inf. NaN becomes a quiet NaN with the sign kept.
 */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  const u = scratchU32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  // Unbiased exponent; f16 normal range is -14..15.
  const e = exp - 127;
  if (e > 15) return sign | 0x7c00;
  if (e >= -14) {
    // Normal: keep 10 of 23 mantissa bits, round the 13 dropped bits to nearest even.
    const dropped = mant & 0x1fff;
    let half = ((e + 15) << 10) | (mant >>> 13);
    if (dropped > 0x1000 || (dropped === 0x1000 && (half & 1) === 1)) half++;
    return sign | half; // a carry into the exponent is the correct rounding (up to Inf)
  }
  if (e < -25) return sign; // below half the smallest subnormal: rounds to ±0
  // Subnormal: value = mant' × 2^-24 with the implicit bit made explicit.
  mant |= 0x800000;
  const shift = -e - 14 + 13; // 14..24
  const kept = mant >>> shift;
  const rem = mant & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  let out = kept;
  if (rem > halfway || (rem === halfway && (kept & 1) === 1)) out++;
  return sign | out;
}

/**
 * Decodes `count` elements of `dtype` from `bytes` (little-endian, starting at byte 0) into `out`.
 * `bytes.byteOffset` must be a multiple of the element size for the fast paths; a misaligned view
 * is copied first.
 */
export function decodeToF32(
  dtype: FloatDType,
  bytes: Uint8Array,
  out: Float32Array,
  count = out.length,
): void {
  const size = DTYPE_SIZES[dtype];
  if (bytes.byteLength < count * size) {
    throw new DTypeError(
      `decode ${dtype}: ${bytes.byteLength} bytes hold fewer than ${count} elements`,
    );
  }
  if (bytes.byteOffset % size !== 0) bytes = bytes.slice(0, count * size);
  if (dtype === "F32") {
    out.set(new Float32Array(bytes.buffer, bytes.byteOffset, count));
  } else if (dtype === "BF16") {
    const src = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
    const dst = new Uint32Array(out.buffer, out.byteOffset, count);
    for (let i = 0; i < count; i++) dst[i] = src[i]! << 16;
  } else {
    const src = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
    for (let i = 0; i < count; i++) out[i] = f16ToF32(src[i]!);
  }
}

/**
 * Encodes `count` float32 values from `src` into `bytes` as `dtype`, rounding once to nearest even.
 * `bytes.byteOffset` must be a multiple of the element size.
 */
export function encodeFromF32(
  dtype: FloatDType,
  src: Float32Array,
  bytes: Uint8Array,
  count = src.length,
): void {
  const size = DTYPE_SIZES[dtype];
  if (bytes.byteLength < count * size) {
    throw new DTypeError(
      `encode ${dtype}: ${bytes.byteLength} bytes cannot hold ${count} elements`,
    );
  }
  if (bytes.byteOffset % size !== 0) {
    throw new DTypeError(
      `encode ${dtype}: byte offset ${bytes.byteOffset} is not aligned to ${size}`,
    );
  }
  if (dtype === "F32") {
    new Float32Array(bytes.buffer, bytes.byteOffset, count).set(src.subarray(0, count));
  } else if (dtype === "BF16") {
    const s = new Uint32Array(src.buffer, src.byteOffset, count);
    const d = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
    for (let i = 0; i < count; i++) {
      const u = s[i]!;
      d[i] =
        (u & 0x7fffffff) > 0x7f800000
          ? (u >>> 16) | 0x0040
          : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
    }
  } else {
    const d = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
    for (let i = 0; i < count; i++) d[i] = f32ToF16(src[i]!);
  }
}
