import { collectDefaultMetrics, Registry } from "prom-client";

/** Options for {@link createMetrics}. */
export interface MetricsOptions {
  /** Service name, added as the `service` label on every series (omitted when not given). */
  service?: string;
  /** Further labels on every series (e.g. `{ replica: "0" }`); never ids with high cardinality. */
  defaultLabels?: Record<string, string>;
  /** Collect prom-client's process and Node.js metrics (default true). */
  defaultMetrics?: boolean;
}

/**
 * Creates the process's metrics registry: a fresh prom-client `Registry` (not the global one, so
 * tests can run several side by side) with the default process/Node.js metrics and default labels.
 */
export function createMetrics(options: MetricsOptions = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({
    ...options.defaultLabels,
    ...(options.service ? { service: options.service } : {}),
  });
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}
