import { monitorEventLoopDelay } from "node:perf_hooks";
import { type Bus, type JobConsumer, type Kv, TerminalJobError } from "@abl/bus";
import {
  captureActivations,
  type ModelCache,
  type SourceContext,
  type WorkerLauncher,
} from "@abl/refusal";
import { artifactExists, type ObjectStore } from "@abl/store";
import type { Logger } from "pino";
import { CAPTURE_JOB_KIND, type CaptureJob, resolveJobContrast } from "./capture-request.ts";
import type { EngineSlot } from "./engine-slot.ts";
import { type CaptureRecord, getRecord, updateRecord } from "./job-records.ts";

/** Progress goes to KV at most this often (each write is a JetStream round trip). */
export const PROGRESS_INTERVAL_MS = 500;
/** Redelivery timeout; progress heartbeats (`working()`) keep long captures alive. */
export const CAPTURE_ACK_WAIT_MS = 120_000;

/** Errors a retry cannot fix: bad input rather than a flaky store or a killed pod. */
const TERMINAL = new Set([
  "ContrastSetError",
  "ActivationsError",
  "DirectionsError",
  "SafetensorsError",
  "ModelLoadError",
  "ModelCacheError",
  "EngineRequestError",
  "ChatTemplateError",
  "RpcError",
]);

/** Options of {@link consumeCaptureJobs}. */
export interface CaptureConsumerOptions {
  readonly bus: Bus;
  readonly store: ObjectStore;
  readonly kv: Kv;
  readonly log: Logger;
  readonly signal: AbortSignal;
  /** Local copies of the models in the store, reused across jobs. */
  readonly models: ModelCache;
  /** The built-in engine kept loaded across jobs for the same model digest. */
  readonly engines: EngineSlot;
  readonly sources?: SourceContext;
  /** Launcher of the transformers worker (local subprocess by default). */
  readonly launcher?: WorkerLauncher;
}

/**
 * Consumes `capture` jobs: model from the local cache (copied from the store once per digest),
 * the engine kept from the previous job when it is the same model, prompts, capture, artifact,
 * KV record.
 */
export function consumeCaptureJobs(options: CaptureConsumerOptions): JobConsumer {
  const { bus, store, kv, log } = options;
  return bus.consumeJobs(
    CAPTURE_JOB_KIND,
    async (delivery) => {
      const job = delivery.payload as CaptureJob;
      const jlog = log.child({ job: job.stepKey, attempt: delivery.attempt });
      let rec: CaptureRecord = await updateRecord(
        kv,
        job.stepKey,
        await getRecord(kv, job.stepKey),
        { state: "running", outputKey: job.outputKey, message: "loading model" },
      );
      let last = 0;
      let writing: Promise<unknown> = Promise.resolve();
      const signal = delivery.signal;
      const t0 = performance.now();
      const timings = {
        fetchSeconds: 0,
        fetched: false,
        loadSeconds: 0,
        loaded: false,
        captureSeconds: 0,
        publishSeconds: 0,
      };
      // How long the event loop (gRPC, NATS heartbeats) was held up at worst during the job.
      const loopDelay = monitorEventLoopDelay({ resolution: 20 });
      loopDelay.enable();
      let captured = 0;
      try {
        // A redelivered job whose artifact a previous attempt already published.
        if (await artifactExists(store, job.outputKey)) {
          await updateRecord(kv, job.stepKey, rec, {
            state: "succeeded",
            cached: true,
            message: "served from the store",
          });
          return;
        }
        // The built-in engine reads the whole model: on a cache miss it loads from the bytes
        // just downloaded instead of reading the new folder back.
        const model = await options.models.acquire(job.modelKey, job.modelDigest, signal, {
          memory: job.engine !== "transformers",
        });
        timings.fetchSeconds = (performance.now() - t0) / 1000;
        timings.fetched = model.fetched;
        let result: Awaited<ReturnType<typeof captureActivations>>;
        let counts = { refuse: 0, comply: 0 };
        try {
          const { set, splits } = await resolveJobContrast(job.contrast, store, {
            ...options.sources,
            signal,
          });
          counts = { refuse: set.refuse.length, comply: set.comply.length };
          result = await captureActivations({
            store,
            modelDir: model.dir,
            modelDigest: job.modelDigest,
            set,
            splits,
            engine: job.engine,
            filter: job.filter,
            signal,
            builtin: async (s) => {
              const m = await options.engines.get(job.modelDigest, model.dir, s, model.files);
              timings.loadSeconds = m.loadSeconds;
              timings.loaded = m.loaded;
              return m;
            },
            ...(job.chatTemplate ? { chatTemplate: job.chatTemplate } : {}),
            ...(job.batchSize ? { batchSize: job.batchSize } : {}),
            ...(options.launcher ? { launcher: options.launcher } : {}),
            onProgress: (e) => {
              if (e.type === "progress" && e.bucket === "comply" && e.done === e.total) {
                captured = performance.now();
                timings.captureSeconds =
                  (captured - t0) / 1000 - timings.fetchSeconds - timings.loadSeconds;
              }
              const now = Date.now();
              if (e.type === "filter") counts = e.kept;
              else if (now - last < PROGRESS_INTERVAL_MS && e.done < e.total) return;
              last = now;
              delivery.working();
              const total = counts.refuse + counts.comply;
              const done =
                e.type === "filter" ? 0 : (e.bucket === "comply" ? counts.refuse : 0) + e.done;
              const message =
                e.type === "filter"
                  ? `filter kept ${e.kept.refuse} refuse and ${e.kept.comply} comply prompts`
                  : `capturing ${e.bucket}`;
              const snapshot = rec;
              writing = writing
                .then(async () => {
                  rec = await updateRecord(kv, job.stepKey, snapshot, { done, total, message });
                })
                // Progress is best effort: a KV write that times out while the CPU is saturated
                // must not fail (or crash) the job; the final state write below is awaited.
                .catch((err: unknown) => jlog.warn({ err }, "progress write failed"));
            },
          });
        } finally {
          model.release();
        }
        // Writing the artifact (safetensors encoding, S3 upload, manifest) after the last batch.
        if (captured > 0) timings.publishSeconds = (performance.now() - captured) / 1000;
        const total = counts.refuse + counts.comply;
        await writing;
        if (result.key !== job.stepKey)
          throw new TerminalJobError(
            `capture resolved to key ${result.key}, not the requested ${job.stepKey}: the prompt sources changed since Start`,
          );
        await updateRecord(kv, job.stepKey, rec, {
          state: "succeeded",
          cached: result.cached,
          done: total,
          total,
          message: result.cached ? "served from the store" : `captured ${total} prompts`,
        });
        jlog.info(
          {
            cached: result.cached,
            prompts: total,
            seconds: (performance.now() - t0) / 1000,
            ...timings,
            eventLoopMaxMs: loopDelay.max / 1e6,
          },
          "capture done",
        );
      } catch (err) {
        await writing.catch(() => {});
        const e = err as Error;
        const terminal = TERMINAL.has(e?.name) || err instanceof TerminalJobError;
        jlog.error({ err, terminal }, "capture failed");
        await updateRecord(kv, job.stepKey, rec, {
          state: terminal ? "failed" : "queued",
          message: terminal ? "failed" : "retrying",
          error: { code: e?.name ?? "Error", message: e?.message ?? String(err) },
        });
        if (terminal && !(err instanceof TerminalJobError))
          throw new TerminalJobError(e.message, { cause: err });
        throw err;
      } finally {
        loopDelay.disable();
      }
    },
    { signal: options.signal, concurrency: 1, ackWaitMs: CAPTURE_ACK_WAIT_MS },
  );
}
