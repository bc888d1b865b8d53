import { decodeToF32, encodeFromF32, type FloatDType } from "@abl/tensor";

/** How a writer is edited. */
export type PatchMethod = "project" | "norm-preserving";

/** Sums a kernel accumulates for `abliteration.json`; merged across chunks and slices. */
export interface EditStats {
  /** Σ (rᵀw)² over the write vectors before the edit (f64). */
  leakBefore: number;
  /** Σ (rᵀw′)² after the edit, on the rounded stored values. */
  leakAfter: number;
  /** ‖W‖²_F before and after (rounded values). */
  normBefore: number;
  normAfter: number;
  /** Largest relative change of a write vector's norm (norm-preserving: should be ~1 ulp). */
  maxVectorNormChange: number;
  /** ‖W′ − W‖²_F on the rounded stored values. */
  diffSq: number;
}

/** Fresh zeroed {@link EditStats}. */
export function emptyStats(): EditStats {
  return {
    leakBefore: 0,
    leakAfter: 0,
    normBefore: 0,
    normAfter: 0,
    maxVectorNormChange: 0,
    diffSq: 0,
  };
}

/**
 * Scratch space reused across calls, so a patch allocates its working memory once (fresh pages
 * are slow to touch on our VMs, see ../shared/reference/machine.md).
 */
export class KernelScratch {
  private f32 = new Float32Array(0);
  private cols = 0;
  private sums: ColumnSums | undefined;
  /** A float32 row buffer of at least `n` elements. */
  row(n: number): Float32Array {
    if (this.f32.length < n) this.f32 = new Float32Array(n);
    return this.f32.subarray(0, n);
  }
  private prev = new Float32Array(0);
  /** A second float32 row buffer (the values before an edit). */
  previous(n: number): Float32Array {
    if (this.prev.length < n) this.prev = new Float32Array(n);
    return this.prev.subarray(0, n);
  }
  /** Zeroed per-column accumulators for a slice with `n` columns. */
  columns(n: number): ColumnSums {
    if (this.cols < n || !this.sums) {
      this.cols = n;
      this.sums = {
        dot: new Float64Array(n),
        norm: new Float64Array(n),
        coef: new Float64Array(n),
        scale: new Float64Array(n),
        dotAfter: new Float64Array(n),
        normAfter: new Float64Array(n),
      };
    }
    const s = this.sums;
    const out: ColumnSums = {
      dot: s.dot.subarray(0, n),
      norm: s.norm.subarray(0, n),
      coef: s.coef.subarray(0, n),
      scale: s.scale.subarray(0, n),
      dotAfter: s.dotAfter.subarray(0, n),
      normAfter: s.normAfter.subarray(0, n),
    };
    for (const a of Object.values(out)) a.fill(0);
    return out;
  }
}

/**
 * Edits `rows` write vectors stored with the hidden axis last (`bytes` holds `rows × hidden`
 * elements of `dtype`), in place: e ← e − λ (e·r) r, or for norm-preserving the same followed by
 * rescaling e to its original norm. Dot products and norms accumulate in f64; each element is
 * computed in f64, rounded to f32, then rounded once to the stored dtype.
 */
export function editHiddenLast(
  bytes: Uint8Array,
  dtype: FloatDType,
  rows: number,
  r: Float64Array,
  lambda: number,
  method: PatchMethod,
  stats: EditStats,
  scratch: KernelScratch,
): void {
  const h = r.length;
  const size = dtype === "F32" ? 4 : 2;
  const row = scratch.row(h);
  if (dtype === "BF16") {
    editHiddenLastBf16(bytes, rows, r, lambda, method, stats, row);
    return;
  }
  for (let k = 0; k < rows; k++) {
    const rowBytes = bytes.subarray(k * h * size, (k + 1) * h * size);
    decodeToF32(dtype, rowBytes, row, h);
    let dot = 0;
    let n0 = 0;
    for (let i = 0; i < h; i++) {
      const w = row[i]!;
      dot += w * r[i]!;
      n0 += w * w;
    }
    const c = lambda * dot;
    let scale = 1;
    if (method === "norm-preserving") {
      // ‖e − c r‖² = ‖e‖² − 2c·dot + c² (‖r‖ = 1)
      const n1 = n0 - 2 * c * dot + c * c;
      scale = n1 > 0 ? Math.sqrt(n0 / n1) : 1;
    }
    const old = scratch.previous(h);
    old.set(row);
    for (let i = 0; i < h; i++) row[i] = (row[i]! - c * r[i]!) * scale;
    encodeFromF32(dtype, row, rowBytes, h);
    decodeToF32(dtype, rowBytes, row, h);
    let dot1 = 0;
    let n2 = 0;
    for (let i = 0; i < h; i++) {
      const w = row[i]!;
      dot1 += w * r[i]!;
      n2 += w * w;
      stats.diffSq += (w - old[i]!) * (w - old[i]!);
    }
    stats.leakBefore += dot * dot;
    stats.leakAfter += dot1 * dot1;
    stats.normBefore += n0;
    stats.normAfter += n2;
    if (method === "norm-preserving" && n0 > 0) {
      const change = Math.abs(Math.sqrt(n2 / n0) - 1);
      if (change > stats.maxVectorNormChange) stats.maxVectorNormChange = change;
    }
  }
}

/** {@link editHiddenLast} for bf16 with decode and rounding fused into the loops. */
function editHiddenLastBf16(
  bytes: Uint8Array,
  rows: number,
  r: Float64Array,
  lambda: number,
  method: PatchMethod,
  stats: EditStats,
  row: Float32Array,
): void {
  const h = r.length;
  const words = new Uint16Array(bytes.buffer, bytes.byteOffset, rows * h);
  const bits = new Uint32Array(row.buffer, row.byteOffset, h);
  for (let k = 0; k < rows; k++) {
    const base = k * h;
    let dot = 0;
    let n0 = 0;
    for (let i = 0; i < h; i++) {
      bits[i] = words[base + i]! << 16;
      const w = row[i]!;
      dot += w * r[i]!;
      n0 += w * w;
    }
    const c = lambda * dot;
    let scale = 1;
    if (method === "norm-preserving") {
      const n1 = n0 - 2 * c * dot + c * c;
      scale = n1 > 0 ? Math.sqrt(n0 / n1) : 1;
    }
    let dot1 = 0;
    let n2 = 0;
    let diff = 0;
    for (let i = 0; i < h; i++) {
      const w0 = row[i]!;
      row[i] = (w0 - c * r[i]!) * scale;
      const u = bits[i]!;
      const b =
        (u & 0x7fffffff) > 0x7f800000
          ? (u >>> 16) | 0x0040
          : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
      words[base + i] = b;
      bits[i] = b << 16;
      const w = row[i]!;
      dot1 += w * r[i]!;
      n2 += w * w;
      diff += (w - w0) * (w - w0);
    }
    stats.diffSq += diff;
    stats.leakBefore += dot * dot;
    stats.leakAfter += dot1 * dot1;
    stats.normBefore += n0;
    stats.normAfter += n2;
    if (method === "norm-preserving" && n0 > 0) {
      const change = Math.abs(Math.sqrt(n2 / n0) - 1);
      if (change > stats.maxVectorNormChange) stats.maxVectorNormChange = change;
    }
  }
}

/** Per-column sums and coefficients of one `[hidden, n]` slice (all f64, length n). */
export interface ColumnSums {
  /** rᵀw_j before the edit. */
  readonly dot: Float64Array;
  /** ‖w_j‖² before the edit. */
  readonly norm: Float64Array;
  /** c_j = λ·rᵀw_j. */
  readonly coef: Float64Array;
  /** Rescale factor s_j (1 for project). */
  readonly scale: Float64Array;
  /** rᵀw′_j and ‖w′_j‖² on the rounded stored values. */
  readonly dotAfter: Float64Array;
  readonly normAfter: Float64Array;
}

/**
 * First pass over rows `[row0, row0 + count)` of a `[hidden, n]` slice (`bytes` starts at row0):
 * adds r_i·w_ij and w_ij² into the column sums.
 */
export function accumulateHiddenFirst(
  bytes: Uint8Array,
  dtype: FloatDType,
  row0: number,
  count: number,
  n: number,
  r: Float64Array,
  sums: ColumnSums,
  scratch: KernelScratch,
): void {
  const size = dtype === "F32" ? 4 : 2;
  const row = scratch.row(n);
  const { dot, norm } = sums;
  if (dtype === "BF16") {
    // Fused decode: bf16 bits shifted into the float32 scratch's bit view, read back as floats.
    const src = new Uint16Array(bytes.buffer, bytes.byteOffset, count * n);
    const bits = new Uint32Array(row.buffer, row.byteOffset, n);
    for (let k = 0; k < count; k++) {
      const ri = r[row0 + k]!;
      const base = k * n;
      for (let j = 0; j < n; j++) {
        bits[j] = src[base + j]! << 16;
        const w = row[j]!;
        dot[j]! += ri * w;
        norm[j]! += w * w;
      }
    }
    return;
  }
  for (let k = 0; k < count; k++) {
    decodeToF32(dtype, bytes.subarray(k * n * size, (k + 1) * n * size), row, n);
    const ri = r[row0 + k]!;
    for (let j = 0; j < n; j++) {
      const w = row[j]!;
      dot[j]! += ri * w;
      norm[j]! += w * w;
    }
  }
}

/** Fills `coef` and `scale` from `dot` and `norm` (after the first pass). */
export function columnCoefficients(sums: ColumnSums, lambda: number, method: PatchMethod): void {
  const { dot, norm, coef, scale } = sums;
  for (let j = 0; j < dot.length; j++) {
    const d = dot[j]!;
    const c = lambda * d;
    coef[j] = c;
    if (method === "norm-preserving") {
      // ‖w − c r‖² = ‖w‖² − 2c·(rᵀw) + c² because ‖r‖ = 1.
      const n0 = norm[j]!;
      const n1 = n0 - 2 * c * d + c * c;
      scale[j] = n1 > 0 ? Math.sqrt(n0 / n1) : 1;
    } else {
      scale[j] = 1;
    }
  }
}

/**
 * Second pass over rows `[row0, row0 + count)`: w′_ij = s_j (w_ij − r_i c_j), written back in
 * place and rounded once; adds the rounded values into `dotAfter` and `normAfter` and returns
 * Σ (w′ − w)² over the rows.
 */
export function applyHiddenFirst(
  bytes: Uint8Array,
  dtype: FloatDType,
  row0: number,
  count: number,
  n: number,
  r: Float64Array,
  sums: ColumnSums,
  scratch: KernelScratch,
): number {
  const size = dtype === "F32" ? 4 : 2;
  const row = scratch.row(n);
  const { coef, scale, dotAfter, normAfter } = sums;
  let diff = 0;
  if (dtype === "BF16") {
    // One fused loop: decode, edit in f64, round to f32 (store into the scratch), round once to
    // bf16 (nearest even; NaN kept quiet), and accumulate the stored value's statistics.
    const words = new Uint16Array(bytes.buffer, bytes.byteOffset, count * n);
    const bits = new Uint32Array(row.buffer, row.byteOffset, n);
    for (let k = 0; k < count; k++) {
      const ri = r[row0 + k]!;
      const base = k * n;
      for (let j = 0; j < n; j++) {
        bits[j] = words[base + j]! << 16;
        const w0 = row[j]!;
        row[j] = (w0 - ri * coef[j]!) * scale[j]!;
        const u = bits[j]!;
        const b =
          (u & 0x7fffffff) > 0x7f800000
            ? (u >>> 16) | 0x0040
            : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
        words[base + j] = b;
        bits[j] = b << 16;
        const w = row[j]!;
        dotAfter[j]! += ri * w;
        normAfter[j]! += w * w;
        diff += (w - w0) * (w - w0);
      }
    }
    return diff;
  }
  const old = scratch.previous(n);
  for (let k = 0; k < count; k++) {
    const rowBytes = bytes.subarray(k * n * size, (k + 1) * n * size);
    decodeToF32(dtype, rowBytes, row, n);
    old.set(row);
    const ri = r[row0 + k]!;
    for (let j = 0; j < n; j++) row[j] = (row[j]! - ri * coef[j]!) * scale[j]!;
    encodeFromF32(dtype, row, rowBytes, n);
    decodeToF32(dtype, rowBytes, row, n);
    for (let j = 0; j < n; j++) {
      const w = row[j]!;
      dotAfter[j]! += ri * w;
      normAfter[j]! += w * w;
      diff += (w - old[j]!) * (w - old[j]!);
    }
  }
  return diff;
}

/** Folds a finished slice's column sums into `stats`. */
export function addColumnStats(
  sums: Pick<ColumnSums, "dot" | "norm" | "dotAfter" | "normAfter">,
  method: PatchMethod,
  stats: EditStats,
): void {
  const { dot, norm, dotAfter, normAfter } = sums;
  for (let j = 0; j < dot.length; j++) {
    stats.leakBefore += dot[j]! * dot[j]!;
    stats.leakAfter += dotAfter[j]! * dotAfter[j]!;
    stats.normBefore += norm[j]!;
    stats.normAfter += normAfter[j]!;
    if (method === "norm-preserving" && norm[j]! > 0) {
      const change = Math.abs(Math.sqrt(normAfter[j]! / norm[j]!) - 1);
      if (change > stats.maxVectorNormChange) stats.maxVectorNormChange = change;
    }
  }
}
