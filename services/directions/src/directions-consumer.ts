import { type Bus, type JobConsumer, type Kv, TerminalJobError } from "@abl/bus";
import { computeDirectionsStep, type ModelCache, type ModelLease } from "@abl/refusal";
import type { ObjectStore } from "@abl/store";
import type { Logger } from "pino";
import { DIRECTIONS_JOB_KIND, type DirectionsJob } from "./directions-request.ts";
import { type DirectionsRecord, getRecord, updateRecord } from "./job-records.ts";

/** Redelivery timeout; every progress step heartbeats (`working()`), and causal probes are per layer. */
export const DIRECTIONS_ACK_WAIT_MS = 300_000;
/** Steps of a directions job, for progress (read, fit, rank, select, publish). */
const STEPS = ["read", "fit", "rank", "select", "publish"] as const;

/** Errors a retry cannot fix. */
const TERMINAL = new Set([
  "ActivationsError",
  "DirectionsError",
  "SafetensorsError",
  "ModelLoadError",
  "ModelCacheError",
  "EngineRequestError",
  "RpcError",
]);

/** Options of {@link consumeDirectionsJobs}. */
export interface DirectionsConsumerOptions {
  readonly bus: Bus;
  readonly store: ObjectStore;
  readonly kv: Kv;
  readonly log: Logger;
  readonly signal: AbortSignal;
  /** Local copies of the models in the store (the causal policy generates with the model). */
  readonly models: ModelCache;
}

/** Consumes `directions` jobs: directions, ranking, selection, artifact, KV record. */
export function consumeDirectionsJobs(options: DirectionsConsumerOptions): JobConsumer {
  const { bus, store, kv, log } = options;
  return bus.consumeJobs(
    DIRECTIONS_JOB_KIND,
    async (delivery) => {
      const job = delivery.payload as DirectionsJob;
      const jlog = log.child({ job: job.stepKey, attempt: delivery.attempt });
      let rec: DirectionsRecord = await updateRecord(
        kv,
        job.stepKey,
        await getRecord(kv, job.stepKey),
        {
          state: "running",
          outputKey: job.outputKey,
          total: STEPS.length,
          message: "started",
        },
      );
      const signal = delivery.signal;
      let writing: Promise<unknown> = Promise.resolve();
      let model: ModelLease | undefined;
      try {
        // Jobs queued by an older service carry no modelDigest; the named one then serves.
        model =
          job.modelKey !== null
            ? await options.models.acquire(
                job.modelKey,
                job.modelDigest ?? job.expectModelDigest ?? "",
                signal,
              )
            : undefined;
        const modelDir = model?.dir;
        const result = await computeDirectionsStep({
          store,
          activations: job.activations,
          method: job.method,
          selection: job.selection,
          seed: job.seed,
          signal,
          ...(job.reference ? { reference: job.reference } : {}),
          ...(job.resamples ? { resamples: job.resamples } : {}),
          ...(job.expectModelDigest ? { expectModelDigest: job.expectModelDigest } : {}),
          ...(modelDir ? { modelDir } : {}),
          onProgress: (e) => {
            delivery.working();
            const snapshot = rec;
            writing = writing
              .then(async () => {
                rec = await updateRecord(kv, job.stepKey, snapshot, {
                  done: STEPS.indexOf(e.step) + 1,
                  message: e.step,
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
            `directions resolved to key ${result.key}, not the requested ${job.stepKey}`,
          );
        await updateRecord(kv, job.stepKey, rec, {
          state: "succeeded",
          cached: result.cached,
          done: STEPS.length,
          message: `selected layer ${result.meta.selection.layer} (${result.meta.selection.policy})`,
        });
        jlog.info({ cached: result.cached, layer: result.meta.selection.layer }, "directions done");
      } catch (err) {
        await writing.catch(() => {});
        const e = err as Error;
        const terminal = TERMINAL.has(e?.name) || err instanceof TerminalJobError;
        jlog.error({ err, terminal }, "directions failed");
        await updateRecord(kv, job.stepKey, rec, {
          state: terminal ? "failed" : "queued",
          message: terminal ? "failed" : "retrying",
          error: { code: e?.name ?? "Error", message: e?.message ?? String(err) },
        });
        if (terminal && !(err instanceof TerminalJobError))
          throw new TerminalJobError(e.message, { cause: err });
        throw err;
      } finally {
        model?.release();
      }
    },
    { signal: options.signal, concurrency: 1, ackWaitMs: DIRECTIONS_ACK_WAIT_MS },
  );
}
