/**
 * Prometheus metrics of pipeline steps (the names the Grafana dashboard and alert rules in deploy/
 * use): job durations by kind and outcome, jobs a runner is waiting on, trials by outcome.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** The step metrics registered in one registry. */
export interface StepMetrics {
  readonly jobDuration: Histogram<"kind" | "outcome">;
  readonly jobsPending: Gauge<"kind">;
  readonly trials: Counter<"outcome">;
}

const byRegistry = new WeakMap<Registry, StepMetrics>();

/** The step metrics of `registry`, registered on first use (prom-client rejects duplicates). */
export function stepMetrics(registry: Registry): StepMetrics {
  let m = byRegistry.get(registry);
  if (!m) {
    m = {
      jobDuration: new Histogram({
        name: "abl_job_duration_seconds",
        help: "Wall time of pipeline step jobs, by step kind and outcome (succeeded, failed, cached).",
        labelNames: ["kind", "outcome"],
        // Steps range from a cached lookup to a bench of many hours.
        buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200],
        registers: [registry],
      }),
      jobsPending: new Gauge({
        name: "abl_jobs_pending",
        help: "Step jobs published by this process and not finished yet, by step kind.",
        labelNames: ["kind"],
        registers: [registry],
      }),
      trials: new Counter({
        name: "abl_trials_total",
        help: "Benchmark trials finished, by outcome.",
        labelNames: ["outcome"],
        registers: [registry],
      }),
    };
    byRegistry.set(registry, m);
  }
  return m;
}
