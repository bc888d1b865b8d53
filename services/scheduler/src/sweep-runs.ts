/**
 * Runs sweeps in the scheduler process: each StartSweep starts `runSweep` over the bus and store
 * the services share, keeps the sweep's KV record current, and can be cancelled.
 */
import type { Bus, Kv } from "@abl/bus";
import {
  resolveSpecPaths,
  runSweep,
  type ServeVariants,
  type StepDefinition,
  SWEEP_STEPS,
  type SweepSpec,
  validateSweepInputs,
} from "@abl/pipeline";
import type { ObjectStore } from "@abl/store";
import type { Logger } from "@abl/telemetry";
import type { Registry } from "prom-client";
import { updateSweep } from "./sweep-records.ts";

/** Dependencies of {@link createSweepRuns}. */
export interface SweepRunsOptions {
  readonly bus: Bus;
  readonly store: ObjectStore;
  readonly kv: Kv;
  readonly cacheDir: string;
  /** How a sweep serves its variants (sglang Deployments named after the sweep). */
  readonly serve: (sweepId: string) => ServeVariants;
  readonly log: Logger;
  /** Where `abl_jobs_pending` is exported. */
  readonly registry?: Registry;
}

/** The sweeps running in this process. */
export interface SweepRuns {
  /** Starts a sweep (validated spec) under `sweepId`; resolves once it is recorded as running. */
  start(sweepId: string, spec: SweepSpec, specDigest: string): Promise<void>;
  /** Aborts a sweep running here; false if it is not running in this process. */
  cancel(sweepId: string, reason: string): boolean;
  /** Aborts every sweep and waits for them to settle (shutdown). */
  stopAll(): Promise<void>;
}

export function createSweepRuns(o: SweepRunsOptions): SweepRuns {
  const running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  const steps = (sweep: string) => ({
    bus: o.bus,
    store: o.store,
    sweep,
    definitions: SWEEP_STEPS as unknown as StepDefinition<never, unknown>[],
    ...(o.registry ? { registry: o.registry } : {}),
  });

  return {
    async start(sweepId, given, specDigest) {
      if (running.has(sweepId)) return;
      // Relative paths in a spec sent over gRPC resolve against the scheduler's working folder.
      const spec = resolveSpecPaths(given, process.cwd());
      await validateSweepInputs(spec, o.cacheDir);
      const now = new Date().toISOString();
      await updateSweep(o.kv, sweepId, (r) => ({
        sweepId,
        specDigest,
        state: "running",
        phase: "starting",
        steps: r?.specDigest === specDigest ? r.steps : [],
        createdAt: r?.createdAt ?? now,
        updatedAt: now,
      }));
      const controller = new AbortController();
      const log = o.log.child({ sweep: sweepId });
      const done = runSweep({
        spec,
        specDir: process.cwd(),
        steps: steps(sweepId),
        cacheDir: o.cacheDir,
        serve: o.serve(sweepId),
        signal: controller.signal,
        onEvent: (e) => {
          const write =
            e.type === "phase"
              ? updateSweep(o.kv, sweepId, (r) => ({ ...r!, phase: e.phase }))
              : updateSweep(o.kv, sweepId, (r) => ({
                  ...r!,
                  steps: [
                    ...(r?.steps ?? []).filter((s) => s.key !== e.key),
                    {
                      key: e.key,
                      kind: e.kind,
                      label: e.label,
                      state: "succeeded",
                      cached: e.cached,
                      attempts: 1,
                    },
                  ],
                }));
          write.catch((err: unknown) => log.warn({ err }, "cannot record sweep progress"));
          log.info(e, "sweep progress");
        },
      })
        .then(async (result) => {
          const report = await o.store.getBytes(`${result.reportPrefix}/summary.json`);
          const summary = JSON.parse(new TextDecoder().decode(report)) as {
            summaries: {
              variant: string;
              trials: number;
              passes: number;
              accuracy: number | null;
            }[];
          };
          await updateSweep(o.kv, sweepId, (r) => ({
            ...r!,
            state: "succeeded",
            phase: "done",
            report: result.reportPrefix,
            summaries: summary.summaries.map((s) => ({
              variant: s.variant,
              trials: s.trials,
              passes: s.passes,
              accuracy: s.accuracy,
            })),
          }));
          log.info({ report: result.reportPrefix }, "sweep finished");
        })
        .catch(async (err: unknown) => {
          const cancelled = controller.signal.aborted;
          log.error({ err }, cancelled ? "sweep cancelled" : "sweep failed");
          await updateSweep(o.kv, sweepId, (r) => ({
            ...r!,
            state: cancelled ? "cancelled" : "failed",
            error: cancelled
              ? String((controller.signal.reason as Error)?.message ?? "cancelled")
              : (err as Error).message,
          })).catch((e: unknown) => log.error({ err: e }, "cannot record the sweep's end"));
        })
        .finally(() => running.delete(sweepId));
      running.set(sweepId, { controller, done });
    },
    cancel(sweepId, reason) {
      const r = running.get(sweepId);
      if (!r) return false;
      r.controller.abort(new Error(reason || "cancelled by request"));
      return true;
    },
    async stopAll() {
      for (const r of running.values()) r.controller.abort(new Error("scheduler shutting down"));
      await Promise.allSettled([...running.values()].map((r) => r.done));
    },
  };
}
