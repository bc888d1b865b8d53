/**
 * SchedulerService: StartSweep validates the spec and starts it; GetSweep reads the sweep's KV
 * record; WatchSweep replays the sweep's step events from the bus and ends with its final status;
 * CancelSweep aborts it.
 */
import type { Bus, Kv } from "@abl/bus";
import { parseSweepSpec, SpecError, type StepEvent } from "@abl/pipeline";
import {
  type GetSweepResponseSchema,
  jobStateFromName,
  RpcError,
  type SchedulerService,
  type ServiceImpl,
  type SweepEventSchema,
} from "@abl/rpc";
import { sha256Hex } from "@abl/store";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { getSweep, isFinished, type SweepRecord } from "./sweep-records.ts";
import type { SweepRuns } from "./sweep-runs.ts";

/** Dependencies of the SchedulerService handlers. */
export interface SchedulerHandlerOptions {
  readonly bus: Bus;
  readonly kv: Kv;
  readonly runs: SweepRuns;
}

/** Sweep ids are bus subject tokens and KV keys. */
const SWEEP_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;

function checkId(id: string): string {
  if (!SWEEP_ID.test(id))
    throw new RpcError("INVALID_ARGUMENT", `sweep id "${id}" must match ${SWEEP_ID}`);
  return id;
}

/** gRPC status messages are one line: the spec's problems joined. */
function specInvalid(err: SpecError): RpcError {
  return new RpcError("INVALID_ARGUMENT", `invalid sweep spec: ${err.problems.join("; ")}`);
}

function statusOf(r: SweepRecord) {
  return {
    jobId: r.sweepId,
    stepKey: r.specDigest,
    state: jobStateFromName(r.state),
    cached: false,
    progress: {
      jobId: r.sweepId,
      step: r.phase,
      done: BigInt(r.steps.length),
      unit: "steps",
      message: r.phase,
      timestamp: timestampFromDate(new Date(r.updatedAt)),
      state: jobStateFromName(r.state),
    },
    ...(r.error
      ? { error: { code: r.state === "cancelled" ? "CANCELLED" : "FAILED", message: r.error } }
      : {}),
    createdAt: timestampFromDate(new Date(r.createdAt)),
    updatedAt: timestampFromDate(new Date(r.updatedAt)),
  };
}

export function createSchedulerHandlers(
  o: SchedulerHandlerOptions,
): ServiceImpl<typeof SchedulerService> {
  const mustGet = async (id: string) => {
    const r = await getSweep(o.kv, checkId(id));
    if (!r) throw new RpcError("NOT_FOUND", `no sweep "${id}"`);
    return r;
  };
  return {
    async startSweep(req) {
      let spec: ReturnType<typeof parseSweepSpec>;
      try {
        spec = parseSweepSpec(req.specYaml, "spec_yaml");
      } catch (err) {
        if (err instanceof SpecError) throw specInvalid(err);
        throw err;
      }
      const sweepId = checkId(req.sweepId || spec.name.replaceAll(".", "-"));
      const digest = sha256Hex(req.specYaml);
      const existing = await getSweep(o.kv, sweepId);
      if (existing && existing.specDigest !== digest && !isFinished(existing)) {
        throw new RpcError("ALREADY_EXISTS", `sweep "${sweepId}" is running with another spec`);
      }
      if (existing?.specDigest === digest && existing.state === "succeeded") {
        return { jobId: sweepId, stepKey: digest, cached: true, sweepId };
      }
      try {
        await o.runs.start(sweepId, spec, digest);
      } catch (err) {
        if (err instanceof SpecError) throw specInvalid(err);
        throw err;
      }
      return { jobId: sweepId, stepKey: digest, cached: false, sweepId };
    },

    async getSweep(req) {
      const r = await mustGet(req.sweepId);
      const res: MessageInitShape<typeof GetSweepResponseSchema> = {
        status: statusOf(r),
        sweepId: r.sweepId,
        steps: r.steps.map((s) => ({
          stepKey: s.key,
          kind: s.kind,
          variant: s.label,
          state: jobStateFromName(s.state),
          cached: s.cached,
          attempts: s.attempts,
        })),
        ...(r.summaries
          ? {
              summary: {
                variants: r.summaries.map((s) => ({
                  variant: s.variant,
                  trials: s.trials,
                  passed: s.passes,
                  passRate: s.trials > 0 ? s.passes / s.trials : 0,
                })),
                ...(r.report
                  ? {
                      report: { key: `${r.report}/report.html` },
                      summary: { key: `${r.report}/summary.json` },
                    }
                  : {}),
              },
            }
          : {}),
      };
      return res;
    },

    async *watchSweep(req, ctx) {
      const first = await mustGet(req.sweepId);
      let seq = 0n;
      if (isFinished(first)) {
        yield {
          event: {
            sweepId: first.sweepId,
            sequence: ++seq,
            timestamp: timestampFromDate(new Date()),
            event: { case: "finished", value: statusOf(first) },
          },
        };
        return;
      }
      // Step events come from the bus (replayed from the start); the end comes from the KV record.
      const stop = new AbortController();
      const signal = AbortSignal.any([ctx.signal, stop.signal]);
      const queue: Array<MessageInitShape<typeof SweepEventSchema>> = [];
      let wake: (() => void) | undefined;
      let finished = false;
      const push = (e: MessageInitShape<typeof SweepEventSchema>) => {
        queue.push(e);
        wake?.();
      };
      const events = (async () => {
        for await (const e of o.bus.subscribeEvents(`${first.sweepId}.step`, {
          fromStart: true,
          signal,
        })) {
          const ev = e.data as StepEvent;
          const ts = timestampFromDate(e.time);
          if (ev.type === "progress") {
            push({
              sweepId: first.sweepId,
              sequence: BigInt(e.seq),
              timestamp: ts,
              event: {
                case: "progress",
                value: {
                  jobId: ev.key,
                  step: ev.kind,
                  done: BigInt(Math.round(ev.done)),
                  total: BigInt(Math.round(ev.total)),
                  unit: ev.unit,
                  message: ev.message ?? "",
                  timestamp: ts,
                },
              },
            });
          } else if (ev.type === "done" || ev.type === "failed") {
            push({
              sweepId: first.sweepId,
              sequence: BigInt(e.seq),
              timestamp: ts,
              event: {
                case: "step",
                value: {
                  stepKey: ev.key,
                  kind: ev.kind,
                  state: jobStateFromName(
                    ev.type === "done" ? "succeeded" : ev.final ? "failed" : "running",
                  ),
                  cached: ev.type === "done" && ev.cached,
                  attempts: ev.type === "failed" ? ev.attempt : 1,
                  ...(ev.type === "failed"
                    ? { error: { code: "STEP_FAILED", message: ev.error } }
                    : {}),
                },
              },
            });
          }
        }
      })();
      const records = (async () => {
        for await (const c of o.kv.watch({ filter: first.sweepId, signal })) {
          const r = c.value as SweepRecord | undefined;
          if (r && isFinished(r)) {
            finished = true;
            push({
              sweepId: r.sweepId,
              sequence: 0n,
              timestamp: timestampFromDate(new Date()),
              event: { case: "finished", value: statusOf(r) },
            });
            return;
          }
        }
      })();
      try {
        for (;;) {
          while (queue.length > 0) {
            const e = queue.shift()!;
            yield { event: e };
            if (e.event?.case === "finished") return;
          }
          if (ctx.signal.aborted) return;
          await new Promise<void>((resolve) => {
            wake = resolve;
            ctx.signal.addEventListener("abort", () => resolve(), { once: true });
          });
          wake = undefined;
          if (finished && queue.length === 0) return;
        }
      } finally {
        stop.abort();
        await Promise.allSettled([events, records]);
      }
    },

    async cancelSweep(req) {
      const r = await mustGet(req.sweepId);
      if (isFinished(r)) return { state: jobStateFromName(r.state) };
      if (!o.runs.cancel(r.sweepId, req.reason)) {
        throw new RpcError(
          "FAILED_PRECONDITION",
          `sweep "${r.sweepId}" is not running on this scheduler replica`,
        );
      }
      return { state: jobStateFromName("cancelled") };
    },
  };
}
