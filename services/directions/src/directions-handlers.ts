import type { Bus, Kv } from "@abl/bus";
import { readDirections } from "@abl/refusal";
import {
  type DirectionsService,
  type GetDirectionsResponseSchema,
  jobStateFromName,
  RpcError,
  type ServiceImpl,
} from "@abl/rpc";
import { artifactExists, type ObjectStore, readArtifact } from "@abl/store";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DIRECTIONS_JOB_KIND, directionsJobFromRequest } from "./directions-request.ts";
import { type DirectionsRecord, getRecord, isTerminal, updateRecord } from "./job-records.ts";

/** Dependencies of the DirectionsService handlers. */
export interface DirectionsHandlerOptions {
  readonly bus: Bus;
  readonly store: ObjectStore;
  readonly kv: Kv;
}

function progressOf(jobId: string, r: DirectionsRecord) {
  return {
    jobId,
    step: "directions",
    done: BigInt(Math.max(0, Math.round(r.done))),
    total: BigInt(Math.max(0, Math.round(r.total))),
    unit: "steps",
    message: r.message,
    timestamp: timestampFromDate(new Date(r.updatedAt)),
    state: jobStateFromName(r.state),
    ...(r.error ? { error: { code: r.error.code, message: r.error.message } } : {}),
  };
}

async function mustGet(kv: Kv, jobId: string): Promise<DirectionsRecord> {
  if (!/^[0-9a-f]{64}$/.test(jobId))
    throw new RpcError("INVALID_ARGUMENT", `job id "${jobId}" is not a step key`);
  const r = await getRecord(kv, jobId);
  if (!r) throw new RpcError("NOT_FOUND", `no directions job ${jobId}`);
  return r;
}

/** A cosine that is NaN (no neighbour or reference) goes on the wire as 0, as the proto documents. */
function finite(x: number): number {
  return Number.isFinite(x) ? x : 0;
}

/**
 * DirectionsService: StartDirections validates the request against the activations' manifest,
 * answers from the store when the directions exist, else enqueues a bus job keyed by the step
 * key; Get and Watch read the KV record the consumer keeps current.
 */
export function createDirectionsHandlers(
  options: DirectionsHandlerOptions,
): ServiceImpl<typeof DirectionsService> {
  const { bus, store, kv } = options;
  return {
    async startDirections(req) {
      const job = await directionsJobFromRequest(req, store);
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
      await bus.publishJob(DIRECTIONS_JOB_KIND, job, { id: key });
      return { jobId: key, stepKey: key, cached: false };
    },

    async getDirections(req, ctx) {
      const r = await mustGet(kv, req.jobId);
      const res: MessageInitShape<typeof GetDirectionsResponseSchema> = {
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
      const [{ meta }, manifest] = await Promise.all([
        readDirections(store, r.outputKey, ctx.signal),
        readArtifact(store, r.outputKey),
      ]);
      return {
        ...res,
        directions: {
          key: r.outputKey,
          size: BigInt((manifest?.files ?? []).reduce((s, f) => s + f.size, 0)),
        },
        selectedLayer: meta.selection.layer,
        scores: meta.ranking.map((m) => ({
          layer: m.layer,
          auc: m.auc,
          aucCiLow: m.aucLow,
          aucCiHigh: m.aucHigh,
          cohensD: finite(m.cohensD),
          referenceCosine: finite(m.cosReference),
          neighbourCosine: finite(m.cosPrev),
        })),
      };
    },

    async *watchDirections(req, ctx) {
      let r = await mustGet(kv, req.jobId);
      yield { event: progressOf(req.jobId, r) };
      if (isTerminal(r)) return;
      for await (const change of kv.watch({ filter: req.jobId, signal: ctx.signal })) {
        if (change.operation !== "put") continue;
        r = change.value as DirectionsRecord;
        yield { event: progressOf(req.jobId, r) };
        if (isTerminal(r)) return;
      }
    },
  };
}
