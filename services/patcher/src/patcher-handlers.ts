import { type Bus, type Kv, startStepJob, watchJobRecord } from "@abl/bus";
import {
  type GetPatchResponseSchema,
  jobProgress,
  jobStatus,
  type PatcherService,
  requireJobRecord,
  type ServiceImpl,
  type StepKind,
} from "@abl/rpc";
import { artifactExists, type ObjectStore } from "@abl/store";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { getRecord } from "./job-records.ts";
import { PATCH_JOB_KIND, patchJobFromRequest } from "./patch-job.ts";
import { readPatchReport } from "./run-patch-job.ts";

/** Dependencies of the PatcherService handlers. */
export interface PatcherHandlerOptions {
  readonly bus: Bus;
  readonly store: ObjectStore;
  readonly kv: Kv;
}

/** The patch step on the wire: progress counts bytes. */
const PATCH: StepKind = { step: "patch", unit: "bytes" };

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
      return startStepJob(bus, kv, PATCH_JOB_KIND, job, () => artifactExists(store, job.outputKey));
    },

    async getPatch(req, ctx) {
      const r = await requireJobRecord(PATCH, req.jobId, (id) => getRecord(kv, id));
      const res: MessageInitShape<typeof GetPatchResponseSchema> = {
        status: jobStatus(PATCH, req.jobId, r),
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
      const first = await requireJobRecord(PATCH, req.jobId, (id) => getRecord(kv, id));
      for await (const r of watchJobRecord(kv, req.jobId, first, ctx.signal))
        yield { event: jobProgress(PATCH, req.jobId, r) };
    },
  };
}
