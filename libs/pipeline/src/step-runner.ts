/**
 * Runs pipeline steps through a `Bus` and an `ObjectStore`, so the embedded `abl run` (memory bus,
 * local folder) and the cluster scheduler (NATS, MinIO) share one mechanism:
 *
 * - a step's output is the artifact `<prefix>/<key>/` where key = stepKey(kind, {version, params});
 * - `runStep` returns the stored result when that artifact exists (cache hit, resume after a crash),
 *   else publishes a job with id = key (so a step asked for twice runs once) and waits for the
 *   worker's `done` or `failed` event;
 * - `startStepWorkers` consumes those jobs, runs the step's generator, writes its files through an
 *   artifact writer whose manifest is committed last, and emits progress events on the way.
 */
import type { Bus, Job } from "@abl/bus";
import { TerminalJobError } from "@abl/bus";
import {
  type ArtifactWriter,
  createArtifactWriter,
  type ObjectStore,
  readArtifact,
  stepKey,
} from "@abl/store";
import type { Registry } from "prom-client";
import { type StepMetrics, stepMetrics } from "./step-metrics.ts";

/** Progress of a running step, as its generator yields it. */
export interface StepProgress {
  readonly done: number;
  readonly total: number;
  /** What `done` counts: `prompts`, `bytes`, `trials`, ... */
  readonly unit: string;
  readonly message?: string;
}

/** What a step's `run` gets besides its params. */
export interface StepContext {
  readonly key: string;
  /** Store prefix of this step's artifact (`<prefix>/<key>`). */
  readonly prefix: string;
  readonly store: ObjectStore;
  /** Files written here become visible only when the step returns (manifest last). */
  readonly writer: ArtifactWriter;
  readonly signal: AbortSignal;
  /** Delivery number of this job (1 = first try). */
  readonly attempt: number;
  /**
   * Values the step needs that do not change its output and so are not part of its key: the URL
   * of a running model server, a local cache folder.
   */
  readonly runtime: Readonly<Record<string, unknown>>;
  /** The process's step metrics, when it exports any (services do; `abl run` does not). */
  readonly metrics?: StepMetrics;
}

/**
 * One kind of step. `run` is an async generator: it yields progress and returns a JSON result that
 * is stored in the manifest (`meta.result`) and handed to whoever asked for the step. A step that
 * publishes its own artifact at `ctx.prefix` (manifest last) returns that manifest's metadata.
 */
export interface StepDefinition<P = unknown, R = unknown> {
  readonly kind: string;
  /** Bump when the code changes what the step produces: it is part of the key. */
  readonly version: number;
  /** Store prefix for outputs, e.g. `activations`, `directions`, `models`. */
  readonly prefix: string;
  run(params: P, ctx: StepContext): AsyncGenerator<StepProgress, R>;
}

/** Events a step runner publishes on `abl.event.<sweep>.step`. */
export type StepEvent =
  | { type: "started"; kind: string; key: string; attempt: number }
  | ({ type: "progress"; kind: string; key: string } & StepProgress)
  | { type: "done"; kind: string; key: string; cached: boolean }
  | { type: "failed"; kind: string; key: string; attempt: number; final: boolean; error: string };

/** A step that failed for good (after its retries). */
export class StepFailedError extends Error {
  override readonly name = "StepFailedError";
  constructor(
    readonly kind: string,
    readonly key: string,
    message: string,
  ) {
    super(`step ${kind} (${key.slice(0, 12)}) failed: ${message}`);
  }
}

/** The result of `runStep`. */
export interface StepOutcome<R> {
  readonly key: string;
  readonly prefix: string;
  readonly result: R;
  /** True when the output existed already and nothing ran. */
  readonly cached: boolean;
}

/** Options shared by the step runner and its workers. */
export interface StepRunnerOptions {
  readonly bus: Bus;
  readonly store: ObjectStore;
  /** Sweep id: events go to `abl.event.<sweep>.step`. */
  readonly sweep: string;
  readonly definitions: readonly StepDefinition<never, unknown>[];
  /** prom-client registry for `abl_job_duration_seconds`, `abl_jobs_pending`, `abl_trials_total`. */
  readonly registry?: Registry;
}

/** Job payload on `abl.job.<kind>`. */
interface StepJob {
  kind: string;
  key: string;
  sweep: string;
  params: unknown;
  runtime: Record<string, unknown>;
}

/** The key and artifact prefix a step with these params has. */
export function stepLocation(
  def: StepDefinition<never, unknown>,
  params: unknown,
): { key: string; prefix: string } {
  const key = stepKey(def.kind, { version: def.version, params });
  return { key, prefix: `${def.prefix}/${key}` };
}

/**
 * The bus queue of a step kind: `abl.job.step-<kind>`. Kept apart from the queues that services
 * consume for their own gRPC API (`abl.job.patch`, ...), so either kind of job finds its worker.
 */
export function stepQueue(kind: string): string {
  return `step-${kind}`;
}

/** Progress events are throttled to this interval per step, so a fast loop does not flood the bus. */
const PROGRESS_INTERVAL_MS = 250;

function findDefinition(defs: readonly StepDefinition<never, unknown>[], kind: string) {
  const def = defs.find((d) => d.kind === kind);
  if (!def)
    throw new Error(
      `no step definition for kind "${kind}" (known: ${defs.map((d) => d.kind).join(", ")})`,
    );
  return def;
}

/** A step's result as stored: `meta.result` when the runner committed it, else the whole meta. */
function resultOf<R>(meta: Record<string, unknown>): R {
  return ("result" in meta ? meta.result : meta) as R;
}

/**
 * Runs (or finds) one step and returns its result. Safe to call concurrently and from several
 * processes: the job id de-duplicates, and the artifact check makes finished work free.
 */
export async function runStep<R>(
  opts: StepRunnerOptions,
  kind: string,
  params: unknown,
  options: { signal?: AbortSignal; runtime?: Record<string, unknown> } = {},
): Promise<StepOutcome<R>> {
  const { signal } = options;
  const def = findDefinition(opts.definitions, kind);
  const { key, prefix } = stepLocation(def, params);
  const existing = await readArtifact(opts.store, prefix);
  if (existing) return { key, prefix, result: resultOf<R>(existing.meta), cached: true };

  const subject = `${opts.sweep}.step`;
  const pending = opts.registry ? stepMetrics(opts.registry).jobsPending : undefined;
  let counted = false;
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const events = opts.bus
      .subscribeEvents(subject, { signal: controller.signal })
      [Symbol.asyncIterator]();
    // Subscribe before publishing, and look again after subscribing: a worker that finished in
    // between is then seen either as an event or as the artifact.
    const first = events.next();
    const again = await readArtifact(opts.store, prefix);
    if (again) return { key, prefix, result: resultOf<R>(again.meta), cached: true };
    const job: StepJob = { kind, key, sweep: opts.sweep, params, runtime: options.runtime ?? {} };
    await opts.bus.publishJob(stepQueue(kind), job, { id: key });
    pending?.inc({ kind });
    counted = true;
    let next = first;
    for (;;) {
      const r = await next;
      if (r.done) {
        signal?.throwIfAborted();
        throw new StepFailedError(kind, key, "event stream ended before the step finished");
      }
      const ev = r.value.data as StepEvent;
      if (ev.key === key) {
        if (ev.type === "done") {
          const m = await readArtifact(opts.store, prefix);
          if (!m) throw new StepFailedError(kind, key, "reported done but its artifact is missing");
          return { key, prefix, result: resultOf<R>(m.meta), cached: ev.cached };
        }
        if (ev.type === "failed" && ev.final) throw new StepFailedError(kind, key, ev.error);
      }
      next = events.next();
    }
  } finally {
    if (counted) pending?.dec({ kind });
    signal?.removeEventListener("abort", onAbort);
    controller.abort();
  }
}

/** A running set of step workers. */
export interface StepWorkers {
  stop(): Promise<void>;
}

/** Options for {@link startStepWorkers}. */
export interface StepWorkerOptions extends StepRunnerOptions {
  /** Jobs run at once per kind (default 1). */
  readonly concurrency?: Readonly<Record<string, number>>;
  /** Deliveries before a failing step is given up (default 3). */
  readonly maxDeliver?: number;
  /** A delivery with no heartbeat for this long is redelivered (default 60 s). */
  readonly ackWaitMs?: number;
}

/**
 * Consumes step jobs of every defined kind and runs them. A step that throws is retried by the
 * bus; on its last delivery (or for a `TerminalJobError`) a final `failed` event is published.
 */
export function startStepWorkers(opts: StepWorkerOptions): StepWorkers {
  const maxDeliver = opts.maxDeliver ?? 3;
  const consumers = opts.definitions.map((def) =>
    opts.bus.consumeJobs(stepQueue(def.kind), (job) => handle(def, job), {
      concurrency: opts.concurrency?.[def.kind] ?? 1,
      maxDeliver,
      ackWaitMs: opts.ackWaitMs ?? 60_000,
      backoffMs: [500, 2_000, 5_000],
    }),
  );

  async function handle(def: StepDefinition<never, unknown>, job: Job): Promise<void> {
    const payload = job.payload as StepJob;
    const subject = `${payload.sweep}.step`;
    const prefix = `${def.prefix}/${payload.key}`;
    const emit = (e: StepEvent) => opts.bus.publishEvent(subject, e);
    const metrics = opts.registry ? stepMetrics(opts.registry) : undefined;
    const timer = metrics?.jobDuration.startTimer({ kind: def.kind });
    if (await readArtifact(opts.store, prefix)) {
      timer?.({ outcome: "cached" });
      await emit({ type: "done", kind: def.kind, key: payload.key, cached: true });
      return;
    }
    await emit({ type: "started", kind: def.kind, key: payload.key, attempt: job.attempt });
    const writer = createArtifactWriter(opts.store, prefix);
    let last = 0;
    try {
      const gen = def.run(payload.params as never, {
        key: payload.key,
        prefix,
        store: opts.store,
        writer,
        signal: job.signal,
        attempt: job.attempt,
        runtime: payload.runtime ?? {},
        ...(metrics ? { metrics } : {}),
      });
      let r = await gen.next();
      while (!r.done) {
        job.working();
        const now = Date.now();
        if (now - last >= PROGRESS_INTERVAL_MS || r.value.done === r.value.total) {
          last = now;
          await emit({ type: "progress", kind: def.kind, key: payload.key, ...r.value });
        }
        r = await gen.next();
      }
      job.signal.throwIfAborted();
      // A step may publish its artifact itself (with its own manifest metadata); otherwise the
      // files it wrote through `writer` are committed here with its result.
      if (!(await readArtifact(opts.store, prefix))) {
        await writer.commit({
          kind: def.kind,
          version: def.version,
          key: payload.key,
          params: payload.params,
          result: r.value,
        });
      }
      timer?.({ outcome: "succeeded" });
      await emit({ type: "done", kind: def.kind, key: payload.key, cached: false });
    } catch (err) {
      timer?.({ outcome: "failed" });
      await writer.abort().catch(() => undefined);
      const final = err instanceof TerminalJobError || job.attempt >= maxDeliver;
      const error = err instanceof Error ? err.message : String(err);
      await emit({
        type: "failed",
        kind: def.kind,
        key: payload.key,
        attempt: job.attempt,
        final,
        error,
      }).catch(() => undefined);
      throw err;
    }
  }

  return {
    async stop() {
      await Promise.all(consumers.map((c) => c.stop()));
    },
  };
}
