import { type Bus, type JobConsumer, type Kv, TerminalJobError } from "@abl/bus";
import {
  captureActivations,
  materializeModel,
  type SourceContext,
  type WorkerLauncher,
} from "@abl/refusal";
import type { ObjectStore } from "@abl/store";
import type { Logger } from "pino";
import { CAPTURE_JOB_KIND, type CaptureJob, resolveJobContrast } from "./capture-request.ts";
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
  /** Local folder where models are materialized from the store. */
  readonly modelCacheDir: string;
  readonly sources?: SourceContext;
  /** Launcher of the transformers worker (local subprocess by default). */
  readonly launcher?: WorkerLauncher;
}

/** Consumes `capture` jobs: model from the store, prompts, capture, artifact, KV record. */
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
      try {
        const modelDir = await materializeModel(
          store,
          job.modelKey,
          options.modelCacheDir,
          job.modelDigest,
          signal,
        );
        const { set, splits } = await resolveJobContrast(job.contrast, store, {
          ...options.sources,
          signal,
        });
        const total = set.refuse.length + set.comply.length;
        const result = await captureActivations({
          store,
          modelDir,
          modelDigest: job.modelDigest,
          set,
          splits,
          engine: job.engine,
          signal,
          ...(job.chatTemplate ? { chatTemplate: job.chatTemplate } : {}),
          ...(job.batchSize ? { batchSize: job.batchSize } : {}),
          ...(options.launcher ? { launcher: options.launcher } : {}),
          onProgress: (e) => {
            if (e.type !== "progress") return;
            const now = Date.now();
            if (now - last < PROGRESS_INTERVAL_MS && e.done < e.total) return;
            last = now;
            delivery.working();
            const done = (e.bucket === "comply" ? set.refuse.length : 0) + e.done;
            const snapshot = rec;
            writing = writing
              .then(async () => {
                rec = await updateRecord(kv, job.stepKey, snapshot, {
                  done,
                  total,
                  message: `capturing ${e.bucket}`,
                });
              })
              // Progress is best effort: a KV write that times out while the CPU is saturated
              // must not fail (or crash) the job; the final state write below is awaited.
              .catch((err: unknown) => jlog.warn({ err }, "progress write failed"));
          },
        });
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
        jlog.info({ cached: result.cached, prompts: total }, "capture done");
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
      }
    },
    { signal: options.signal, concurrency: 1, ackWaitMs: CAPTURE_ACK_WAIT_MS },
  );
}
