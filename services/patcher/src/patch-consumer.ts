import { type Bus, type JobConsumer, type Kv, TerminalJobError } from "@abl/bus";
import type { ObjectStore } from "@abl/store";
import type { Logger } from "pino";
import { getRecord, updateRecord } from "./job-records.ts";
import { PATCH_JOB_KIND, type PatchJob } from "./patch-job.ts";
import { runPatchJob } from "./run-patch-job.ts";

/** Progress is written to KV at most this often (each write is a JetStream round trip). */
export const PROGRESS_INTERVAL_MS = 500;
/** Redelivery timeout; `working()` heartbeats with every progress write keep long patches alive. */
export const PATCH_ACK_WAIT_MS = 60_000;

/** Errors that a retry cannot fix: bad input, not a flaky store. */
const TERMINAL = new Set([
  "PatchError",
  "CheckpointError",
  "UnknownArchitectureError",
  "SafetensorsError",
  "DTypeError",
  "RpcError",
]);

/** Options of {@link consumePatchJobs}. */
export interface PatchConsumerOptions {
  readonly bus: Bus;
  readonly store: ObjectStore;
  readonly kv: Kv;
  readonly log: Logger;
  readonly signal: AbortSignal;
  /** Patches run at once (default 1: a patch is I/O- and memory-bandwidth bound). */
  readonly concurrency?: number;
}

/**
 * Consumes `patch` jobs from the bus: each job streams the model from the store, patches it and
 * publishes it under the job's output key, keeping the KV record current. A job whose output
 * already exists completes at once as cached.
 */
export function consumePatchJobs(options: PatchConsumerOptions): JobConsumer {
  const { bus, store, kv, log } = options;
  return bus.consumeJobs(
    PATCH_JOB_KIND,
    async (delivery) => {
      const job = delivery.payload as PatchJob;
      const jlog = log.child({ job: job.stepKey, attempt: delivery.attempt });
      let rec = await getRecord(kv, job.stepKey);
      rec = await updateRecord(kv, job.stepKey, rec, {
        state: "running",
        outputKey: job.outputKey,
        message: "started",
      });
      let last = 0;
      let writing: Promise<unknown> = Promise.resolve();
      try {
        const result = await runPatchJob(
          store,
          job,
          (e) => {
            const now = Date.now();
            if (e.type === "start") rec = { ...rec!, total: e.totalBytes };
            if (e.type !== "progress" || now - last < PROGRESS_INTERVAL_MS) return;
            last = now;
            delivery.working();
            const snapshot = rec;
            writing = writing.then(async () => {
              rec = await updateRecord(kv, job.stepKey, snapshot, {
                done: e.bytes,
                message: `writing ${e.file}`,
              });
            });
          },
          delivery.signal,
        );
        await writing;
        const maxLeak = Math.max(0, ...result.report.tensors.map((t) => t.leakage));
        await updateRecord(kv, job.stepKey, rec, {
          state: "succeeded",
          cached: result.cached,
          done: rec.total,
          message: result.cached
            ? "served from the store"
            : `patched ${result.report.tensors.length} tensors, max leakage ${maxLeak.toExponential(2)}`,
        });
        jlog.info({ cached: result.cached, tensors: result.report.tensors.length }, "patch done");
      } catch (err) {
        await writing.catch(() => {});
        const e = err as Error;
        const terminal = TERMINAL.has(e?.name);
        jlog.error({ err, terminal }, "patch failed");
        if (terminal || delivery.signal.aborted === false) {
          await updateRecord(kv, job.stepKey, rec, {
            state: terminal ? "failed" : "queued",
            message: terminal ? "failed" : "retrying",
            error: { code: e?.name ?? "Error", message: e?.message ?? String(err) },
          });
        }
        if (terminal) throw new TerminalJobError(e.message, { cause: err });
        throw err;
      }
    },
    { signal: options.signal, concurrency: options.concurrency ?? 1, ackWaitMs: PATCH_ACK_WAIT_MS },
  );
}
