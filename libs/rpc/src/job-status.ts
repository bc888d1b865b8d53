import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { JobStatusSchema, ProgressEventSchema } from "./gen/abliterate/v1/common_pb.ts";
import { type JobStateName, jobStateFromName } from "./job-state.ts";
import { RpcError } from "./status.ts";

/** The fields of a step job's record that its wire status is made of (the bus's job records). */
export interface JobRecordFields {
  readonly state: JobStateName;
  readonly stepKey: string;
  readonly cached: boolean;
  readonly done: number;
  readonly total: number;
  readonly message: string;
  readonly error?: { readonly code: string; readonly message: string } | undefined;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** Which step a service runs and the unit its progress counts. */
export interface StepKind {
  /** `capture`, `directions`, `patch`. */
  readonly step: string;
  /** `prompts`, `steps`, `bytes`. */
  readonly unit: string;
}

/** The record's error in wire form, spread into a message (nothing when there is none). */
function errorOf(r: JobRecordFields) {
  return r.error ? { error: { code: r.error.code, message: r.error.message } } : {};
}

/** The progress event of job `jobId` from its record. */
export function jobProgress(
  kind: StepKind,
  jobId: string,
  r: JobRecordFields,
): MessageInitShape<typeof ProgressEventSchema> {
  return {
    jobId,
    step: kind.step,
    done: BigInt(Math.max(0, Math.round(r.done))),
    total: BigInt(Math.max(0, Math.round(r.total))),
    unit: kind.unit,
    message: r.message,
    timestamp: timestampFromDate(new Date(r.updatedAt)),
    state: jobStateFromName(r.state),
    ...errorOf(r),
  };
}

/** The status of job `jobId` from its record. */
export function jobStatus(
  kind: StepKind,
  jobId: string,
  r: JobRecordFields,
): MessageInitShape<typeof JobStatusSchema> {
  return {
    jobId,
    stepKey: r.stepKey,
    state: jobStateFromName(r.state),
    cached: r.cached,
    progress: jobProgress(kind, jobId, r),
    ...errorOf(r),
    createdAt: timestampFromDate(new Date(r.createdAt)),
    updatedAt: timestampFromDate(new Date(r.updatedAt)),
  };
}

/**
 * The record of job `jobId` from `get`: INVALID_ARGUMENT when the id is not a step key (64 hex
 * digits), NOT_FOUND when there is no such job.
 */
export async function requireJobRecord<R>(
  kind: StepKind,
  jobId: string,
  get: (jobId: string) => Promise<R | undefined>,
): Promise<R> {
  if (!/^[0-9a-f]{64}$/.test(jobId))
    throw new RpcError("INVALID_ARGUMENT", `job id "${jobId}" is not a step key`);
  const r = await get(jobId);
  if (!r) throw new RpcError("NOT_FOUND", `no ${kind.step} job ${jobId}`);
  return r;
}
