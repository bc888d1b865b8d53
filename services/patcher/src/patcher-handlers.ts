import type { Bus, Kv } from "@abl/bus";
import {
  type GetPatchResponseSchema,
  jobStateFromName,
  type PatcherService,
  RpcError,
  type ServiceImpl,
} from "@abl/rpc";
import { artifactExists, type ObjectStore } from "@abl/store";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { getRecord, isTerminal, type JobRecord, updateRecord } from "./job-records.ts";
import { PATCH_JOB_KIND, patchJobFromRequest } from "./patch-job.ts";
import { readPatchReport } from "./run-patch-job.ts";

/** Dependencies of the PatcherService handlers. */
export interface PatcherHandlerOptions {
  readonly bus: Bus;
  readonly store: ObjectStore;
  readonly kv: Kv;
}

function progressOf(jobId: string, r: JobRecord) {
  return {
    jobId,
    step: "patch",
    done: BigInt(Math.max(0, Math.round(r.done))),
    total: BigInt(Math.max(0, Math.round(r.total))),
    unit: "bytes",
    message: r.message,
    timestamp: timestampFromDate(new Date(r.updatedAt)),
    state: jobStateFromName(r.state),
    ...(r.error ? { error: { code: r.error.code, message: r.error.message } } : {}),
  };
}

async function mustGet(kv: Kv, jobId: string): Promise<JobRecord> {
  if (!/^[0-9a-f]{64}$/.test(jobId))
    throw new RpcError("INVALID_ARGUMENT", `job id "${jobId}" is not a step key`);
  const r = await getRecord(kv, jobId);
  if (!r) throw new RpcError("NOT_FOUND", `no patch job ${jobId}`);
  return r;
}

/**
 * PatcherService: StartPatch computes the step key and either answers from the store (cached) or
 * enqueues a bus job with the step key as id (so duplicates collapse); GetPatch and WatchPatch read
 * the job's KV record, which the consumer keeps current.
 */
export function createPatcherHandlers(
  options: PatcherHandlerOptions,
): ServiceImpl<typeof PatcherService> {
  const { bus, store, kv } = options;
  return {
    async startPatch(req) {
      const job = patchJobFromRequest(req);
      const key = job.stepKey;
      const rec = await getRecord(kv, key);
      if (await artifactExists(store, job.outputKey)) {
        if (rec?.state !== "succeeded") {
          await updateRecord(kv, key, rec, {
            state: "succeeded",
            cached: true,
            outputKey: job.outputKey,
            message: "served from the store",
          });
        }
        return { jobId: key, stepKey: key, cached: true };
      }
      if (!rec || rec.state === "failed" || rec.state === "cancelled") {
        await updateRecord(kv, key, undefined, {
          state: "queued",
          outputKey: job.outputKey,
          message: "queued",
        });
      }
      await bus.publishJob(PATCH_JOB_KIND, job, { id: key });
      return { jobId: key, stepKey: key, cached: false };
    },

    async getPatch(req, ctx) {
      const r = await mustGet(kv, req.jobId);
      const res: MessageInitShape<typeof GetPatchResponseSchema> = {
        status: {
          jobId: req.jobId,
          stepKey: r.stepKey,
          state: jobStateFromName(r.state),
          cached: r.cached,
          progress: progressOf(req.jobId, r),
          ...(r.error ? { error: { code: r.error.code, message: r.error.message } } : {}),
          createdAt: timestampFromDate(new Date(r.createdAt)),
          updatedAt: timestampFromDate(new Date(r.updatedAt)),
        },
      };
      if (r.state !== "succeeded") return res;
      const report = await readPatchReport(store, r.outputKey, ctx.signal);
      return {
        ...res,
        patchedModel: { storeKey: r.outputKey, digest: r.stepKey },
        artifact: { key: r.outputKey },
        edits: report.tensors.map((t) => ({
          name: t.name,
          leakage: t.leakage,
          relativeNormChange: t.relativeNormChange,
        })),
      };
    },

    async *watchPatch(req, ctx) {
      let r = await mustGet(kv, req.jobId);
      yield { event: progressOf(req.jobId, r) };
      if (isTerminal(r)) return;
      for await (const change of kv.watch({ filter: req.jobId, signal: ctx.signal })) {
        if (change.operation !== "put") continue;
        r = change.value as JobRecord;
        yield { event: progressOf(req.jobId, r) };
        if (r.state !== "queued" && r.state !== "running") return;
      }
    },
  };
}
