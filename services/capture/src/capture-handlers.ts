import type { Bus, Kv } from "@abl/bus";
import { type ActivationsMeta, ContrastSetError, type SourceContext } from "@abl/refusal";
import {
  type CaptureService,
  type GetCaptureResponseSchema,
  jobStateFromName,
  RpcError,
  type ServiceImpl,
} from "@abl/rpc";
import { artifactExists, type ObjectStore, readArtifact } from "@abl/store";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { CAPTURE_JOB_KIND, captureJobFromRequest } from "./capture-request.ts";
import { type CaptureRecord, getRecord, isTerminal, updateRecord } from "./job-records.ts";

/** Dependencies of the CaptureService handlers. */
export interface CaptureHandlerOptions {
  readonly bus: Bus;
  readonly store: ObjectStore;
  readonly kv: Kv;
  /** How prompt sources are fetched (HF endpoint, fetch). */
  readonly sources?: SourceContext;
}

function progressOf(jobId: string, r: CaptureRecord) {
  return {
    jobId,
    step: "capture",
    done: BigInt(Math.max(0, Math.round(r.done))),
    total: BigInt(Math.max(0, Math.round(r.total))),
    unit: "prompts",
    message: r.message,
    timestamp: timestampFromDate(new Date(r.updatedAt)),
    state: jobStateFromName(r.state),
    ...(r.error ? { error: { code: r.error.code, message: r.error.message } } : {}),
  };
}

async function mustGet(kv: Kv, jobId: string): Promise<CaptureRecord> {
  if (!/^[0-9a-f]{64}$/.test(jobId))
    throw new RpcError("INVALID_ARGUMENT", `job id "${jobId}" is not a step key`);
  const r = await getRecord(kv, jobId);
  if (!r) throw new RpcError("NOT_FOUND", `no capture job ${jobId}`);
  return r;
}

/**
 * CaptureService: StartCapture resolves the prompts, computes the step key and answers from the
 * store when the artifact exists, else enqueues a bus job with the step key as id (duplicates
 * collapse); Get and Watch read the KV record the consumer keeps current.
 */
export function createCaptureHandlers(
  options: CaptureHandlerOptions,
): ServiceImpl<typeof CaptureService> {
  const { bus, store, kv } = options;
  return {
    async startCapture(req, ctx) {
      let job: Awaited<ReturnType<typeof captureJobFromRequest>>;
      try {
        job = await captureJobFromRequest(req, store, { ...options.sources, signal: ctx.signal });
      } catch (err) {
        if (err instanceof ContrastSetError)
          throw new RpcError("INVALID_ARGUMENT", err.message, { cause: err });
        throw err;
      }
      const key = job.stepKey;
      const rec = await getRecord(kv, key);
      if (await artifactExists(store, job.outputKey)) {
        if (rec?.state !== "succeeded")
          await updateRecord(kv, key, rec, {
            state: "succeeded",
            cached: true,
            outputKey: job.outputKey,
            message: "served from the store",
          });
        return { jobId: key, stepKey: key, cached: true };
      }
      if (!rec || rec.state === "failed" || rec.state === "cancelled") {
        await updateRecord(kv, key, undefined, {
          state: "queued",
          outputKey: job.outputKey,
          message: "queued",
        });
      }
      await bus.publishJob(CAPTURE_JOB_KIND, job, { id: key });
      return { jobId: key, stepKey: key, cached: false };
    },

    async getCapture(req) {
      const r = await mustGet(kv, req.jobId);
      const res: MessageInitShape<typeof GetCaptureResponseSchema> = {
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
      const manifest = await readArtifact(store, r.outputKey);
      if (!manifest)
        throw new RpcError(
          "INTERNAL",
          `job ${req.jobId} succeeded but ${r.outputKey} has no manifest`,
        );
      const meta = manifest.meta as unknown as ActivationsMeta;
      return {
        ...res,
        activations: {
          key: r.outputKey,
          size: BigInt(manifest.files.reduce((s, f) => s + f.size, 0)),
        },
        numLayers: meta.layers,
        hiddenSize: meta.hidden,
        numRefusePrompts: meta.prompts.refuse,
        numComplyPrompts: meta.prompts.comply,
      };
    },

    async *watchCapture(req, ctx) {
      let r = await mustGet(kv, req.jobId);
      yield { event: progressOf(req.jobId, r) };
      if (isTerminal(r)) return;
      for await (const change of kv.watch({ filter: req.jobId, signal: ctx.signal })) {
        if (change.operation !== "put") continue;
        r = change.value as CaptureRecord;
        yield { event: progressOf(req.jobId, r) };
        if (isTerminal(r)) return;
      }
    },
  };
}
