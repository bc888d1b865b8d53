import { type Bus, type Kv, startStepJob, watchJobRecord } from "@abl/bus";
import { readDirections } from "@abl/refusal";
import {
  type DirectionsService,
  type GetDirectionsResponseSchema,
  jobProgress,
  jobStatus,
  requireJobRecord,
  type ServiceImpl,
  type StepKind,
} from "@abl/rpc";
import { artifactExists, type ObjectStore, readArtifact } from "@abl/store";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { DIRECTIONS_JOB_KIND, directionsJobFromRequest } from "./directions-request.ts";
import { getRecord } from "./job-records.ts";

/** Dependencies of the DirectionsService handlers. */
export interface DirectionsHandlerOptions {
  readonly bus: Bus;
  readonly store: ObjectStore;
  readonly kv: Kv;
}

/** The directions step on the wire: progress counts steps. */
const DIRECTIONS: StepKind = { step: "directions", unit: "steps" };

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
      return startStepJob(bus, kv, DIRECTIONS_JOB_KIND, job, () =>
        artifactExists(store, job.outputKey),
      );
    },

    async getDirections(req, ctx) {
      const r = await requireJobRecord(DIRECTIONS, req.jobId, (id) => getRecord(kv, id));
      const res: MessageInitShape<typeof GetDirectionsResponseSchema> = {
        status: jobStatus(DIRECTIONS, req.jobId, r),
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
      const first = await requireJobRecord(DIRECTIONS, req.jobId, (id) => getRecord(kv, id));
      for await (const r of watchJobRecord(kv, req.jobId, first, ctx.signal))
        yield { event: jobProgress(DIRECTIONS, req.jobId, r) };
    },
  };
}
