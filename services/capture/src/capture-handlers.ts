import { type Bus, type Kv, startStepJob, watchJobRecord } from "@abl/bus";
import { type ActivationsMeta, ContrastSetError, type SourceContext } from "@abl/refusal";
import {
  type CaptureService,
  type GetCaptureResponseSchema,
  jobProgress,
  jobStatus,
  RpcError,
  requireJobRecord,
  type ServiceImpl,
  type StepKind,
} from "@abl/rpc";
import { artifactExists, type ObjectStore, readArtifact } from "@abl/store";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { CAPTURE_JOB_KIND, captureJobFromRequest } from "./capture-request.ts";
import { getRecord } from "./job-records.ts";

/** Dependencies of the CaptureService handlers. */
export interface CaptureHandlerOptions {
  readonly bus: Bus;
  readonly store: ObjectStore;
  readonly kv: Kv;
  /** How prompt sources are fetched (HF endpoint, fetch). */
  readonly sources?: SourceContext;
}

/** The capture step on the wire: progress counts prompts. */
const CAPTURE: StepKind = { step: "capture", unit: "prompts" };

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
      return startStepJob(bus, kv, CAPTURE_JOB_KIND, job, () =>
        artifactExists(store, job.outputKey),
      );
    },

    async getCapture(req) {
      const r = await requireJobRecord(CAPTURE, req.jobId, (id) => getRecord(kv, id));
      const res: MessageInitShape<typeof GetCaptureResponseSchema> = {
        status: jobStatus(CAPTURE, req.jobId, r),
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
      const first = await requireJobRecord(CAPTURE, req.jobId, (id) => getRecord(kv, id));
      for await (const r of watchJobRecord(kv, req.jobId, first, ctx.signal))
        yield { event: jobProgress(CAPTURE, req.jobId, r) };
    },
  };
}
