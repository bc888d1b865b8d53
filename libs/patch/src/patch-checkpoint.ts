import { createHash, type Hash } from "node:crypto";
import { type Checkpoint, LM_HEAD_NAME, untieConfig } from "@abl/checkpoint";
import {
  type ByteSink,
  createSafetensorsWriter,
  encodeSafetensorsHeader,
  encodeShardIndex,
  type SafetensorsWriter,
  SHARD_INDEX_NAME,
  type TensorInfo,
  type TensorSpec,
} from "@abl/tensor";
import { DEFAULT_RING_BYTES, OrderedWrites, PatchRuntime } from "./edit-pipeline.ts";
import { PatchError } from "./errors.ts";
import type { EditStats } from "./kernels.ts";
import type { OutputFolder } from "./output.ts";
import type { EditOp, PatchPlan } from "./plan.ts";

/**
 * Size of the shared ring every chunk passes through (reads, edits, writes, hashes). A `[hidden,
 * in]` slice up to half of it is read once; bigger slices take a second read pass.
 */
export const DEFAULT_BUFFER_BYTES = DEFAULT_RING_BYTES;
/** Config and tokenizer files larger than this are streamed instead of read whole. */
const SMALL_FILE_BYTES = 64 * 1024 * 1024;

/** Progress of a running patch, for bars and Watch streams. */
export type PatchEvent =
  | {
      readonly type: "start";
      readonly totalBytes: number;
      readonly totalTensors: number;
      readonly editedTensors: number;
    }
  | {
      readonly type: "progress";
      readonly bytes: number;
      readonly tensors: number;
      readonly file: string;
    }
  | {
      readonly type: "file";
      readonly name: string;
      readonly size: number;
      readonly sha256: string;
    };

/** Per edited tensor entry of `abliteration.json`. */
export interface TensorReport {
  readonly name: string;
  readonly target: string;
  readonly layer: number | null;
  readonly lambda: number;
  readonly directionRow: number;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** ‖rᵀW′‖ / ‖rᵀW‖ on the stored (rounded) values; 0 when rᵀW was already 0. */
  readonly leakage: number;
  /** ‖W′ − W‖_F / ‖W‖_F on the stored values (how much the edit moved the tensor). */
  readonly relativeNormChange: number;
  /** ‖W′‖_F / ‖W‖_F − 1 (norm-preserving keeps it near 0). */
  readonly normRatioChange: number;
  /** Norm-preserving only: largest |‖w′_j‖/‖w_j‖ − 1| over write vectors. */
  readonly maxVectorNormChange?: number;
}

/** The `abliteration.json` written beside the patched model. */
export interface AbliterationReport {
  readonly version: 1;
  readonly input: {
    readonly location: string;
    readonly digest: string;
    readonly files: readonly { name: string; size: number }[];
  };
  readonly direction: {
    readonly source: string;
    readonly digest: string;
    readonly rows: number;
    readonly hidden: number;
  };
  readonly method: string;
  readonly targets: readonly string[];
  readonly strength: unknown;
  readonly embedScale: number;
  readonly untied: boolean;
  readonly tensors: readonly TensorReport[];
  /** sha256 of every output file except this report. */
  readonly files: readonly { name: string; size: number; sha256: string }[];
}

/** Options of {@link patchCheckpoint}. */
export interface PatchOptions {
  readonly signal?: AbortSignal;
  /**
   * Ring size in bytes (default {@link DEFAULT_BUFFER_BYTES}, or {@link DEFAULT_SHARED_BUFFER_BYTES}
   * when several shards are patched at once).
   */
  readonly bufferBytes?: number;
  /** Threads the bf16 edit splits across (default 2; hashing has a thread of its own). */
  readonly kernelWorkers?: number;
  /**
   * Shards patched at once, each with a hashing thread of its own (default
   * {@link DEFAULT_SHARDS_AT_ONCE} when the output takes several files at once, else 1). They
   * share the ring.
   */
  readonly shardsAtOnce?: number;
}

/**
 * Shards patched at once by default. The sha256 of a file is one sequential stream, so with one
 * shard at a time its hashing thread bounds the patch (6.6 s of the 8.8 GB bench patch at
 * 1.3 GB/s); several spread the hashing over the cores. Measured on the 3-shard bench checkpoint
 * (alternating runs, medians of 3): one 10.5 s, two 9.9 s, three 8.7 s.
 */
export const DEFAULT_SHARDS_AT_ONCE = 3;
/**
 * Default ring when several shards share it: 256 MiB, where three at once ran 8.0 s against
 * 8.7 s with 128 MiB and 8.4 s with 192 MiB, at 435 MiB peak RSS.
 */
export const DEFAULT_SHARED_BUFFER_BYTES = 2 * DEFAULT_RING_BYTES;

/** Name of the report file. */
export const REPORT_NAME = "abliteration.json";

function hashingSink(sink: ByteSink, hash: Hash): ByteSink {
  return {
    name: sink.name,
    get written() {
      return sink.written;
    },
    async write(chunk, signal) {
      hash.update(chunk);
      await sink.write(chunk, signal);
    },
    commit: () => sink.commit(),
    abort: () => sink.abort(),
  };
}

/**
 * A digest that identifies the input cheaply without reading every weight: sha256 over the
 * canonical list of files with their sizes, each shard's parsed header and the bytes of config,
 * index and tokenizer files.
 */
async function inputDigest(ck: Checkpoint, signal?: AbortSignal): Promise<string> {
  const h = createHash("sha256");
  const shards = new Map(ck.shards.map((s) => [s.file, s]));
  for (const f of ck.fileList) {
    h.update(`${f.name}\0${f.size}\0`);
    const shard = shards.get(f.name);
    if (shard) {
      h.update(
        JSON.stringify({
          m: shard.header.metadata,
          t: shard.header.tensors.map((t) => [t.name, t.dtype, t.shape, t.dataOffsets]),
        }),
      );
    } else if (f.size <= SMALL_FILE_BYTES) {
      h.update(await ck.files.readBytes(f.name, SMALL_FILE_BYTES, signal));
    }
  }
  return h.digest("hex");
}

/**
 * Streams a patched copy of `ck` into `out` following `plan`: tensor by tensor through one
 * reused buffer, edited tensors rewritten in place in that buffer, everything else copied byte
 * for byte; same shard layout and key order, lm_head.weight added when untying, config and other
 * files copied, `abliteration.json` last, then published atomically. Yields progress; returns
 * the report. On any error or abort the output is removed.
 */
export async function* patchCheckpoint(
  ck: Checkpoint,
  plan: PatchPlan,
  out: OutputFolder,
  options: PatchOptions = {},
): AsyncGenerator<PatchEvent, AbliterationReport> {
  const { signal } = options;
  const untie = plan.untieFrom;
  const untieInfo = untie ? ck.tensors.get(untie) : undefined;
  const shardFiles = new Set(ck.shards.map((s) => s.file));
  const totalBytes =
    ck.fileList.reduce((a, f) => a + f.size, 0) + (untieInfo?.info.byteLength ?? 0);
  const atOnce = Math.min(
    ck.shards.length,
    options.shardsAtOnce ?? (out.concurrentFiles ? DEFAULT_SHARDS_AT_ONCE : 1),
  );
  const refusal =
    !Number.isInteger(atOnce) || atOnce < 1
      ? `shards at once must be a positive integer, got ${options.shardsAtOnce}`
      : atOnce > 1 && !out.concurrentFiles
        ? `${out.location} takes one file at a time; shards at once must be 1`
        : undefined;
  if (refusal) {
    await out.abort();
    throw new PatchError(refusal);
  }
  yield {
    type: "start",
    totalBytes,
    totalTensors: ck.tensors.size,
    editedTensors: plan.edits.size,
  };

  const edits: { info: TensorInfo; op: EditOp }[] = [];
  for (const shard of ck.shards)
    for (const t of shard.header.tensors) {
      const op = plan.edits.get(t.name);
      if (op) edits.push({ info: t, op });
    }
  const runtime = PatchRuntime.create(plan.directions, plan.method, edits, {
    ringBytes:
      options.bufferBytes ?? (atOnce > 1 ? DEFAULT_SHARED_BUFFER_BYTES : DEFAULT_BUFFER_BYTES),
    hashWorkers: atOnce,
    ...(options.kernelWorkers !== undefined ? { kernelWorkers: options.kernelWorkers } : {}),
  });
  const files: { name: string; size: number; sha256: string }[] = [];
  const tensorReports: TensorReport[] = [];
  let bytesDone = 0;
  let tensorsDone = 0;
  const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

  const writeSmall = async (name: string, bytes: Uint8Array) => {
    const sink = await out.file(name, bytes.byteLength, signal);
    try {
      await sink.write(bytes, signal);
      await sink.commit();
    } catch (err) {
      await sink.abort();
      throw err;
    }
    files.push({ name, size: bytes.byteLength, sha256: sha(bytes) });
  };

  try {
    const digest = await inputDigest(ck, signal);
    /** Patches one shard; reports progress through `emit`. */
    const patchShard = async (
      shard: (typeof ck.shards)[number],
      reports: TensorReport[],
      emit: (e: PatchEvent) => void,
      sig: AbortSignal,
    ) => {
      const extra = untieInfo && untieInfo.file === shard.file ? untieInfo.info : undefined;
      const specs: TensorSpec[] = shard.header.tensors.map((t) => ({
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
      }));
      if (extra) specs.push({ name: LM_HEAD_NAME, dtype: extra.dtype, shape: extra.shape });
      const source = await ck.files.open(shard.file);
      const hash = runtime.workers.hashStream();
      let writer: SafetensorsWriter | undefined;
      let writes: OrderedWrites | undefined;
      const pending: { t: TensorInfo; op: EditOp; stats: Promise<EditStats> }[] = [];
      try {
        // The output size is known up front (same tensors, maybe lm_head): object stores want it.
        const outSize = encodeSafetensorsHeader(specs, shard.header.metadata).fileSize;
        const sink = await out.file(shard.file, outSize, sig);
        writer = await createSafetensorsWriter(sink, specs, shard.header.metadata, sig);
        writes = new OrderedWrites(writer, hash, runtime.ring);
        const tensors = shard.header.tensors;
        for (let i = 0; i < tensors.length && !writes.failed; ) {
          const t = tensors[i]!;
          const op = plan.edits.get(t.name);
          if (op) {
            const { stats } = await runtime.edit(source, t, op, writes, sig);
            // Observed here so a failure surfaces through the writes, not as an unhandled rejection.
            stats.catch(() => {});
            pending.push({ t, op, stats });
            bytesDone += t.byteLength;
            tensorsDone++;
            i++;
          } else {
            // Coalesce a run of untouched tensors into one range copy.
            let j = i;
            while (j < tensors.length && !plan.edits.has(tensors[j]!.name)) j++;
            const start = t.offset;
            const end = tensors[j - 1]!.offset + tensors[j - 1]!.byteLength;
            await runtime.copy(source, start, end - start, writes, sig);
            bytesDone += end - start;
            tensorsDone += j - i;
            i = j;
          }
          emit({ type: "progress", bytes: bytesDone, tensors: tensorsDone, file: shard.file });
        }
        if (extra && !writes.failed) {
          await runtime.copy(source, extra.offset, extra.byteLength, writes, sig);
          bytesDone += extra.byteLength;
        }
        await writes.drain();
        for (const p of pending) reports.push(report(p.t, p.op, await p.stats, plan.method));
        await writer.finish();
      } catch (err) {
        await writes?.drain().catch(() => {});
        await hash.drop();
        await writer?.abort();
        throw err;
      } finally {
        await source.close();
      }
      const size = writer.header.fileSize;
      bytesDone += shard.header.dataStart;
      const file = { name: shard.file, size, sha256: await hash.digest() };
      files.push(file);
      emit({ type: "file", ...file });
    };
    // Shards run `atOnce` at a time; their events are passed on as they come. The first failure
    // stops the others (through `stop`) and is rethrown once all have settled.
    const perShard = ck.shards.map(() => [] as TensorReport[]);
    const stop = new AbortController();
    const sig = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    const events: PatchEvent[] = [];
    let wake: (() => void) | undefined;
    const emit = (e: PatchEvent) => {
      events.push(e);
      wake?.();
    };
    let failure: { error: unknown } | undefined;
    let next = 0;
    let running = 0;
    const startShard = () => {
      const k = next++;
      running++;
      patchShard(ck.shards[k]!, perShard[k]!, emit, sig)
        .catch((error: unknown) => {
          failure ??= { error };
          stop.abort(error);
        })
        .finally(() => {
          running--;
          wake?.();
        });
    };
    for (;;) {
      while (!failure && running < atOnce && next < ck.shards.length) startShard();
      if (events.length > 0) {
        yield events.shift()!;
        continue;
      }
      if (running === 0) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
    if (failure) throw failure.error;
    for (const r of perShard) tensorReports.push(...r);

    if (ck.index) {
      const map = new Map(ck.index.weightMap);
      if (untieInfo) map.set(LM_HEAD_NAME, untieInfo.file);
      let total = 0;
      for (const s of ck.shards) for (const t of s.header.tensors) total += t.byteLength;
      total += untieInfo?.info.byteLength ?? 0;
      const { total_size: _drop, ...rest } = ck.index.metadata as Record<string, unknown>;
      await writeSmall(
        SHARD_INDEX_NAME,
        new TextEncoder().encode(encodeShardIndex(map, total, rest)),
      );
    }
    const config = untie
      ? new TextEncoder().encode(`${JSON.stringify(untieConfig(ck.config.raw), null, 2)}\n`)
      : await ck.files.readBytes("config.json", SMALL_FILE_BYTES, signal);
    await writeSmall("config.json", config);

    for (const f of ck.fileList) {
      if (shardFiles.has(f.name) || f.name === "config.json" || f.name === SHARD_INDEX_NAME)
        continue;
      signal?.throwIfAborted();
      const hash = createHash("sha256");
      const sink = hashingSink(await out.file(f.name, f.size, signal), hash);
      try {
        for await (const chunk of ck.files.stream(f.name, signal)) await sink.write(chunk, signal);
        await sink.commit();
      } catch (err) {
        await sink.abort();
        throw err;
      }
      files.push({ name: f.name, size: sink.written, sha256: hash.digest("hex") });
      bytesDone += f.size;
      yield { type: "progress", bytes: bytesDone, tensors: tensorsDone, file: f.name };
    }

    files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const result: AbliterationReport = {
      version: 1,
      input: {
        location: ck.files.location,
        digest,
        files: ck.fileList.map((f) => ({ name: f.name, size: f.size })),
      },
      direction: {
        source: plan.directions.source,
        digest: plan.directions.digest,
        rows: plan.directions.rows.length,
        hidden: plan.directions.hidden,
      },
      method: plan.method,
      targets: plan.targets,
      strength: plan.strength,
      embedScale: plan.embedScale,
      untied: untie !== undefined,
      tensors: tensorReports,
      files,
    };
    const reportBytes = new TextEncoder().encode(`${JSON.stringify(result, null, 1)}\n`);
    const rsink = await out.file(REPORT_NAME, reportBytes.byteLength, signal);
    await rsink.write(reportBytes, signal);
    await rsink.commit();
    signal?.throwIfAborted();
    await out.publish({
      kind: "patched-model",
      input: digest,
      direction: plan.directions.digest,
      method: plan.method,
    });
    return result;
  } catch (err) {
    await out.abort();
    throw err;
  } finally {
    await runtime.close();
  }
}

function report(t: TensorInfo, op: EditOp, s: EditStats, method: string): TensorReport {
  const leakage = s.leakBefore > 0 ? Math.sqrt(s.leakAfter / s.leakBefore) : 0;
  const n0 = Math.sqrt(s.normBefore);
  const base: TensorReport = {
    name: t.name,
    target: op.writer.target,
    layer: op.writer.layer ?? null,
    lambda: op.lambda,
    directionRow: op.directionRow,
    dtype: t.dtype,
    shape: t.shape,
    leakage,
    relativeNormChange: n0 > 0 ? Math.sqrt(s.diffSq) / n0 : 0,
    normRatioChange: n0 > 0 ? Math.sqrt(s.normAfter) / n0 - 1 : 0,
  };
  return method === "norm-preserving"
    ? { ...base, maxVectorNormChange: s.maxVectorNormChange }
    : base;
}
