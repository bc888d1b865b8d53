import {
  type ByteSource,
  elementCount,
  type FloatDType,
  type SafetensorsWriter,
  type TensorInfo,
} from "@abl/tensor";
import type { Directions } from "./direction.ts";
import {
  accumulateHiddenFirst,
  addColumnStats,
  applyHiddenFirst,
  columnCoefficients,
  type EditStats,
  editHiddenLast,
  emptyStats,
  KernelScratch,
  type PatchMethod,
} from "./kernels.ts";
import { DIRECT_ALIGN } from "./output.ts";
import type { EditOp } from "./plan.ts";
import { Ring, type RingBlock } from "./ring.ts";
import { type HashStream, PatchWorkers } from "./workers.ts";

/**
 * Default size of the ring of shared memory that reads, edits, writes and hashes share. Two
 * Qwen3-4B down_proj slices (50 MB each) fit, so one can be edited while the previous one is
 * written. Allocated once: fresh memory is slow to touch on our VMs (../shared/reference/machine.md).
 */
export const DEFAULT_RING_BYTES = 128 * 1024 * 1024;
/**
 * Largest read/write of untouched bytes at once. Moderate pieces keep the page-cache copies in
 * the CPU caches and let writing, hashing and reading overlap finely.
 */
export const COPY_CHUNK_BYTES = 8 * 1024 * 1024;
/** Kernel workers used by default (the edit splits across them; hashing has its own worker). */
export const DEFAULT_KERNEL_WORKERS = 2;

const ALIGN = 64;
const up = (n: number) => Math.ceil(n / ALIGN) * ALIGN;
/** f64 statistics slots per rows_bf16 call (see kernels.wat). */
const ROW_STATS = 6;

/** Options of {@link PatchRuntime.create}. */
export interface RuntimeOptions {
  readonly ringBytes?: number;
  readonly kernelWorkers?: number;
  /** Hashing workers: one per output file written at once (default 1). */
  readonly hashWorkers?: number;
}

/**
 * Positional writes in flight at once per output file. Local outputs write with direct I/O,
 * which the disk takes faster with more requests queued: the 8.8 GB bench patch ran 11.0–12.0 s
 * with four against 12.1–12.7 s with two (alternating runs). Through the page cache (filesystems
 * without direct I/O) two overlapped best and more contended in the kernel.
 */
export const WRITES_IN_FLIGHT = 4;

/**
 * The output side of one shard: every chunk is hashed in order on its hash stream and
 * written after its edit, at its position when the sink allows (several at once) or in order
 * otherwise; a chunk's ring block is released once it is hashed and written, or on failure.
 */
export class OrderedWrites {
  private hashTail: Promise<unknown> = Promise.resolve();
  private seqTail: Promise<unknown> = Promise.resolve();
  private readonly pending = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;
  private active = 0;
  private readonly queued: (() => void)[] = [];

  constructor(
    private readonly writer: SafetensorsWriter,
    private readonly hash: HashStream,
    private readonly ring: Ring,
  ) {
    this.hashed(Promise.resolve(), writer.header.bytes);
  }

  /** File position of the next chunk pushed. */
  get position(): number {
    return this.writer.position;
  }

  /** True once something failed (the caller stops reading). */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  private hashed(ready: Promise<unknown>, view: Uint8Array): Promise<void> {
    const p = this.hashTail.then(async () => {
      await ready;
      if (!this.failure) await this.hash.update(view);
    });
    this.hashTail = p.catch(() => {});
    return p;
  }

  private async slot<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= WRITES_IN_FLIGHT)
      await new Promise<void>((resolve) => this.queued.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.queued.shift()?.();
    }
  }

  /** Queues `view` (inside `block`) to be hashed and written once `ready` (its edit) settles. */
  push(block: RingBlock, view: Uint8Array, ready: Promise<unknown>, signal?: AbortSignal): void {
    const hashed = this.hashed(ready, view);
    const put = this.writer.claim?.(view.byteLength);
    let written: Promise<void>;
    if (put) {
      written = ready.then(() =>
        this.slot(async () => {
          if (!this.failure) await put(view, signal);
        }),
      );
    } else {
      written = this.seqTail.then(async () => {
        await ready;
        if (!this.failure) await this.writer.write(view, signal);
      });
      this.seqTail = written.catch(() => {});
    }
    const done = Promise.all([hashed, written])
      .then(
        () => {},
        (error: unknown) => {
          this.failure ??= { error };
        },
      )
      .finally(() => {
        this.ring.release(block);
        this.pending.delete(done);
      });
    this.pending.add(done);
  }

  /** Waits for every queued write and hash; rethrows the first failure. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    await this.hashTail;
    if (this.failure) throw this.failure.error;
  }
}

/**
 * The patch's working memory and threads: one shared WebAssembly memory holding the direction
 * rows (f64 and f32), a fixed area of column sums for slices too big for the ring, and the ring;
 * kernel workers that run the SIMD bf16 edit; hashing workers, one per shard patched at once
 * (they share the rest). Other dtypes are edited by the JavaScript kernels on the main thread,
 * reading the same ring.
 */
export class PatchRuntime {
  private readonly scratch = new KernelScratch();
  /** The JavaScript kernels' buffers for big slices, which keep them across reads. */
  private readonly bigScratch = new KernelScratch();
  /** Settles when the big slice in progress is done (they run one at a time). */
  private twoPass: Promise<void> = Promise.resolve();

  private constructor(
    readonly workers: PatchWorkers,
    readonly ring: Ring,
    private readonly directions: Directions,
    private readonly dirOffsets: readonly number[],
    private readonly fixedSums: number,
    private readonly method: PatchMethod,
  ) {}

  /**
   * Sizes the memory for `edits` (tensor info and op pairs): the ring (at least two of the
   * largest row plus a page), the directions and the fixed column sums; starts the workers.
   */
  static create(
    directions: Directions,
    method: PatchMethod,
    edits: readonly { info: TensorInfo; op: EditOp }[],
    options: RuntimeOptions = {},
  ): PatchRuntime {
    const h = directions.hidden;
    let maxRow = 0;
    let maxN = 0;
    for (const { info, op } of edits) {
      const size = info.dtype === "F32" ? 4 : 2;
      if (op.writer.residualAxis === -1) maxRow = Math.max(maxRow, h * size);
      else {
        const n = info.shape[info.shape.length - 1]!;
        maxRow = Math.max(maxRow, n * size);
        maxN = Math.max(maxN, n);
      }
    }
    const workers = options.kernelWorkers ?? DEFAULT_KERNEL_WORKERS;
    // Two of the largest row in flight, each with room to be placed for direct I/O.
    const ringBytes = up(
      Math.max(options.ringBytes ?? DEFAULT_RING_BYTES, 2 * (maxRow + ALIGN + DIRECT_ALIGN)),
    );
    // The kernels read the unit direction as f32 (the edit is f32 arithmetic).
    const dirBytes = up(h * 4);
    const fixedBytes = sumsBytes(maxN, workers);
    const dirArea = dirBytes * directions.rows.length;
    const total = dirArea + fixedBytes + ringBytes;
    const pw = PatchWorkers.create(total, workers, options.hashWorkers ?? 1);
    const offsets = directions.rows.map((r, i) => {
      const off = i * dirBytes;
      new Float32Array(pw.memory.buffer, off, h).set(r);
      return off;
    });
    const ring = new Ring(dirArea + fixedBytes, ringBytes);
    return new PatchRuntime(pw, ring, directions, offsets, dirArea, method);
  }

  /** Largest chunk handed out, so that two are always in flight. */
  private get limit(): number {
    return Math.floor(this.ring.size / 2 / ALIGN) * ALIGN;
  }

  /** A view of the shared memory. */
  private view(offset: number, length: number): Uint8Array {
    return this.workers.bytes.subarray(offset, offset + length);
  }

  /**
   * A ring block holding `bytes` read from `source` at `offset` (`view`), with `extra` more bytes
   * from `up(view end)`; the block goes back to the ring if the read fails. With `at`, the output
   * file position the bytes are written to, the view starts at an address that is congruent to
   * `at` modulo the page size, so a direct-I/O output writes its whole pages from the view itself
   * (the shared memory starts on a page boundary).
   */
  private async readBlock(
    source: ByteSource,
    offset: number,
    bytes: number,
    extra: number,
    signal?: AbortSignal,
    at?: number,
  ): Promise<{ block: RingBlock; view: Uint8Array }> {
    const lead = at === undefined ? 0 : DIRECT_ALIGN;
    const size = extra > 0 || lead > 0 ? up(bytes) + extra + lead : bytes;
    const block = await this.ring.alloc(size, signal);
    const shift = at === undefined ? 0 : (((at - block.offset) % lead) + lead) % lead;
    const view = this.view(block.offset + shift, bytes);
    try {
      await source.read(offset, bytes, view, signal);
    } catch (err) {
      this.ring.release(block);
      throw err;
    }
    return { block, view };
  }

  /** Copies `[offset, offset + length)` of `source` to the output untouched. */
  async copy(
    source: ByteSource,
    offset: number,
    length: number,
    out: OrderedWrites,
    signal?: AbortSignal,
  ): Promise<void> {
    const chunkMax = Math.min(COPY_CHUNK_BYTES, this.limit - DIRECT_ALIGN);
    for (let done = 0; done < length; ) {
      if (out.failed) break;
      const n = Math.min(chunkMax, length - done);
      const { block, view } = await this.readBlock(
        source,
        offset + done,
        n,
        0,
        signal,
        out.position,
      );
      out.push(block, view, Promise.resolve(), signal);
      done += n;
    }
  }

  /**
   * Reads, edits and queues the writes of tensor `t`; resolves when every chunk is dispatched,
   * with a promise of the tensor's statistics (settled when its last chunk is edited).
   */
  async edit(
    source: ByteSource,
    t: TensorInfo,
    op: EditOp,
    out: OrderedWrites,
    signal?: AbortSignal,
  ): Promise<{ stats: Promise<EditStats> }> {
    const dtype = t.dtype as FloatDType;
    const lambda = op.lambda;
    const h = this.directions.hidden;
    const parts: Promise<EditStats>[] = [];
    if (op.writer.residualAxis === -1) {
      const rows = elementCount(t.shape) / h;
      const size = dtype === "F32" ? 4 : 2;
      const rowBytes = h * size;
      const wasm = dtype === "BF16" && h % 8 === 0;
      const extra = wasm ? up(ROW_STATS * 8) * this.workers.parallelism : 0;
      const room = this.limit - extra - ALIGN - (wasm ? DIRECT_ALIGN : 0);
      const perChunk = Math.max(1, Math.floor(room / rowBytes));
      for (let k = 0; k < rows && !out.failed; k += perChunk) {
        signal?.throwIfAborted();
        const count = Math.min(perChunk, rows - k);
        const bytes = count * rowBytes;
        // The wasm kernels take any address; the JavaScript ones keep the 64-byte alignment.
        const { block, view } = await this.readBlock(
          source,
          t.offset + k * rowBytes,
          bytes,
          extra,
          signal,
          wasm ? out.position : undefined,
        );
        const done = wasm
          ? this.rowsWasm(view.byteOffset, up(view.byteOffset + bytes), count, op, lambda)
          : this.rowsJs(view, dtype, count, op, lambda);
        parts.push(done);
        out.push(block, view, done, signal);
      }
      return { stats: mergeAll(parts) };
    }
    const n = t.shape[t.shape.length - 1]!;
    const size = dtype === "F32" ? 4 : 2;
    const sliceBytes = h * n * size;
    const slices = elementCount(t.shape) / (h * n);
    const wasm = dtype === "BF16";
    const perBlockSums = wasm ? sumsBytes(n, this.workers.parallelism) : 0;
    for (let s = 0; s < slices && !out.failed; s++) {
      signal?.throwIfAborted();
      const base = t.offset + s * sliceBytes;
      if (up(sliceBytes) + perBlockSums + (wasm ? DIRECT_ALIGN : 0) <= this.limit) {
        const { block, view } = await this.readBlock(
          source,
          base,
          sliceBytes,
          perBlockSums,
          signal,
          wasm ? out.position : undefined,
        );
        const src = view.byteOffset;
        const done = wasm
          ? this.sliceWasm(src, up(src + sliceBytes), 0, h, n, op, lambda, true)
          : Promise.resolve(this.sliceJs(view, dtype, n, op, lambda));
        parts.push(done);
        out.push(block, view, done, signal);
      } else {
        parts.push((await this.bigSlice(source, base, dtype, n, op, lambda, out, signal)).done);
      }
    }
    return { stats: mergeAll(parts) };
  }

  /** Waits for the fixed sums area; the returned function hands it to the next big slice. */
  private async twoPassTurn(): Promise<() => void> {
    const previous = this.twoPass;
    let unlock = () => {};
    this.twoPass = new Promise<void>((resolve) => {
      unlock = resolve;
    });
    await previous;
    return unlock;
  }

  /**
   * A `[hidden, n]` slice larger than half the ring: pass 1 reads it for the sums, pass 2 edits.
   * The fixed sums area serves one big slice at a time, whichever file it belongs to: it is held
   * until the slice's edits are done, or until this call fails.
   */
  private async bigSlice(
    source: ByteSource,
    base: number,
    dtype: FloatDType,
    n: number,
    op: EditOp,
    lambda: number,
    out: OrderedWrites,
    signal?: AbortSignal,
  ): Promise<{ done: Promise<EditStats> }> {
    const unlock = await this.twoPassTurn();
    let done: Promise<EditStats> | undefined;
    try {
      const h = this.directions.hidden;
      const size = dtype === "F32" ? 4 : 2;
      const rowBytes = n * size;
      const wasm = dtype === "BF16";
      const perChunk = Math.max(1, Math.floor((this.limit - (wasm ? DIRECT_ALIGN : 0)) / rowBytes));
      const r = this.directions.rows[op.directionRow]!;
      const sumsJs = wasm ? undefined : this.bigScratch.columns(n);
      if (wasm)
        this.workers.bytes.fill(
          0,
          this.fixedSums,
          this.fixedSums + sumsBytes(n, this.workers.parallelism),
        );
      const pass1: Promise<unknown>[] = [];
      for (let k = 0; k < h; k += perChunk) {
        signal?.throwIfAborted();
        const count = Math.min(perChunk, h - k);
        const block = await this.ring.alloc(count * rowBytes, signal);
        const view = this.view(block.offset, count * rowBytes);
        try {
          await source.read(base + k * rowBytes, count * rowBytes, view, signal);
          if (!wasm) accumulateHiddenFirst(view, dtype, k, count, n, r, sumsJs!, this.bigScratch);
        } catch (err) {
          this.ring.release(block);
          throw err;
        }
        if (wasm) {
          const p = this.colsum(block.offset, k, count, n, op, this.fixedSums);
          pass1.push(p);
          p.then(
            () => this.ring.release(block),
            () => this.ring.release(block),
          );
        } else this.ring.release(block);
      }
      await Promise.all(pass1);
      if (wasm) this.coefficients(this.fixedSums, n, lambda);
      else columnCoefficients(sumsJs!, lambda, this.method);
      const pass2: Promise<unknown>[] = [];
      let diff = 0;
      for (let k = 0; k < h; k += perChunk) {
        signal?.throwIfAborted();
        const count = Math.min(perChunk, h - k);
        const { block, view } = await this.readBlock(
          source,
          base + k * rowBytes,
          count * rowBytes,
          0,
          signal,
          wasm ? out.position : undefined,
        );
        let p: Promise<unknown>;
        if (wasm) p = this.apply(view.byteOffset, k, count, n, op, this.fixedSums);
        else {
          diff += applyHiddenFirst(view, dtype, k, count, n, r, sumsJs!, this.bigScratch);
          p = Promise.resolve();
        }
        pass2.push(p);
        out.push(block, view, p, signal);
      }
      done = Promise.all(pass2).then(() => {
        const stats = emptyStats();
        if (wasm) this.columnStats(this.fixedSums, n, stats);
        else {
          addColumnStats(sumsJs!, this.method, stats);
          stats.diffSq += diff;
        }
        return stats;
      });
      return { done };
    } finally {
      if (done) done.then(unlock, unlock);
      else unlock();
    }
  }

  /** Views of a sums area for n columns (see {@link sumsBytes}). */
  private sums(at: number, n: number) {
    const f64 = up(n * 8);
    const f32 = up(n * 4);
    const buf = this.workers.memory.buffer;
    return {
      dot: at,
      norm: at + f64,
      dotAfter: at + 2 * f64,
      normAfter: at + 3 * f64,
      coef: at + 4 * f64,
      scale: at + 4 * f64 + f32,
      diff: at + 4 * f64 + 2 * f32,
      views: {
        dot: new Float64Array(buf, at, n),
        norm: new Float64Array(buf, at + f64, n),
        dotAfter: new Float64Array(buf, at + 2 * f64, n),
        normAfter: new Float64Array(buf, at + 3 * f64, n),
        coef: new Float32Array(buf, at + 4 * f64, n),
        scale: new Float32Array(buf, at + 4 * f64 + f32, n),
      },
    };
  }

  /** Column bounds of worker w (multiples of 8 so SIMD blocks never straddle). */
  private columns(n: number, w: number): [number, number] {
    const p = this.workers.parallelism;
    const at = (k: number) => Math.min(n, Math.round((k * n) / p / 8) * 8);
    return [at(w), w === p - 1 ? n : at(w + 1)];
  }

  /** Runs `run(w, c0, c1)` on every worker whose column range is not empty. */
  private perColumns(n: number, run: (w: number, c0: number, c1: number) => Promise<void>) {
    return Promise.all(
      Array.from({ length: this.workers.parallelism }, (_, w) => {
        const [c0, c1] = this.columns(n, w);
        return c0 < c1 ? run(w, c0, c1) : undefined;
      }),
    );
  }

  private colsum(src: number, row0: number, count: number, n: number, op: EditOp, at: number) {
    const s = this.sums(at, n);
    const r32 = this.dirOffsets[op.directionRow]! + row0 * 4;
    return this.perColumns(n, (w, c0, c1) =>
      this.workers.run(w, "colsum_bf16", [src, n, 0, count, c0, c1, r32, s.dot, s.norm]),
    );
  }

  private apply(src: number, row0: number, count: number, n: number, op: EditOp, at: number) {
    const s = this.sums(at, n);
    const r32 = this.dirOffsets[op.directionRow]! + row0 * 4;
    return this.perColumns(n, (w, c0, c1) =>
      this.workers.run(w, "apply_bf16", [
        src,
        n,
        0,
        count,
        c0,
        c1,
        r32,
        s.coef,
        s.scale,
        s.dotAfter,
        s.normAfter,
        s.diff + w * 8,
      ]),
    );
  }

  /** c_j = λ·rᵀw_j and the norm-preserving rescale, from the f64 sums, stored as f32. */
  private coefficients(at: number, n: number, lambda: number): void {
    const { dot, norm, coef, scale } = this.sums(at, n).views;
    for (let j = 0; j < n; j++) {
      const d = dot[j]!;
      const c = lambda * d;
      coef[j] = c;
      if (this.method === "norm-preserving") {
        // ‖w − c r‖² = ‖w‖² − 2c·(rᵀw) + c² because ‖r‖ = 1.
        const n0 = norm[j]!;
        const n1 = n0 - 2 * c * d + c * c;
        scale[j] = n1 > 0 ? Math.sqrt(n0 / n1) : 1;
      } else scale[j] = 1;
    }
  }

  private columnStats(at: number, n: number, stats: EditStats): void {
    const s = this.sums(at, n);
    addColumnStats(s.views, this.method, stats);
    const diffs = new Float64Array(this.workers.memory.buffer, s.diff, this.workers.parallelism);
    for (const d of diffs) stats.diffSq += d;
  }

  private async sliceWasm(
    src: number,
    at: number,
    row0: number,
    count: number,
    n: number,
    op: EditOp,
    lambda: number,
    zero: boolean,
  ): Promise<EditStats> {
    if (zero) this.workers.bytes.fill(0, at, at + sumsBytes(n, this.workers.parallelism));
    await this.colsum(src, row0, count, n, op, at);
    this.coefficients(at, n, lambda);
    await this.apply(src, row0, count, n, op, at);
    const stats = emptyStats();
    this.columnStats(at, n, stats);
    return stats;
  }

  private sliceJs(
    view: Uint8Array,
    dtype: FloatDType,
    n: number,
    op: EditOp,
    lambda: number,
  ): EditStats {
    const h = this.directions.hidden;
    const r = this.directions.rows[op.directionRow]!;
    const sums = this.scratch.columns(n);
    accumulateHiddenFirst(view, dtype, 0, h, n, r, sums, this.scratch);
    columnCoefficients(sums, lambda, this.method);
    const stats = emptyStats();
    stats.diffSq += applyHiddenFirst(view, dtype, 0, h, n, r, sums, this.scratch);
    addColumnStats(sums, this.method, stats);
    return stats;
  }

  /** Edits `count` rows at `src`; `at` is a 64-byte aligned scratch area for the statistics. */
  private async rowsWasm(src: number, at: number, count: number, op: EditOp, lambda: number) {
    const h = this.directions.hidden;
    const p = this.workers.parallelism;
    const slot = up(ROW_STATS * 8);
    this.workers.bytes.fill(0, at, at + slot * p);
    const dir = this.dirOffsets[op.directionRow]!;
    const np = this.method === "norm-preserving" ? 1 : 0;
    await Promise.all(
      Array.from({ length: p }, (_, w) => {
        const k0 = Math.floor((w * count) / p);
        const k1 = Math.floor(((w + 1) * count) / p);
        if (k1 <= k0) return undefined;
        return this.workers.run(w, "rows_bf16", [
          src + k0 * h * 2,
          h,
          k1 - k0,
          dir,
          lambda,
          np,
          at + w * slot,
        ]);
      }),
    );
    const stats = emptyStats();
    for (let w = 0; w < p; w++) {
      const st = new Float64Array(this.workers.memory.buffer, at + w * slot, ROW_STATS);
      stats.leakBefore += st[0]!;
      stats.leakAfter += st[1]!;
      stats.normBefore += st[2]!;
      stats.normAfter += st[3]!;
      stats.maxVectorNormChange = Math.max(stats.maxVectorNormChange, st[4]!);
      stats.diffSq += st[5]!;
    }
    return stats;
  }

  private async rowsJs(
    view: Uint8Array,
    dtype: FloatDType,
    count: number,
    op: EditOp,
    lambda: number,
  ) {
    const stats = emptyStats();
    const r = this.directions.rows[op.directionRow]!;
    editHiddenLast(view, dtype, count, r, lambda, this.method, stats, this.scratch);
    return stats;
  }

  /** Stops the workers. */
  close(): Promise<void> {
    return this.workers.close();
  }
}

/** Bytes of a sums area for n columns: four f64 and two f32 arrays, plus a diff per worker. */
function sumsBytes(n: number, workers: number): number {
  return n === 0 ? 0 : 4 * up(n * 8) + 2 * up(n * 4) + up(workers * 8);
}

async function mergeAll(parts: readonly Promise<EditStats>[]): Promise<EditStats> {
  const all = await Promise.all(parts);
  const s = emptyStats();
  for (const p of all) {
    s.leakBefore += p.leakBefore;
    s.leakAfter += p.leakAfter;
    s.normBefore += p.normBefore;
    s.normAfter += p.normAfter;
    s.diffSq += p.diffSq;
    s.maxVectorNormChange = Math.max(s.maxVectorNormChange, p.maxVectorNormChange);
  }
  return s;
}
