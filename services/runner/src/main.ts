/**
 * Runner service process: hosts the sweep steps that drive served models — the bench (every trial
 * in its own Pod from the task's image, driven through the exec API) and the refusal evaluation —
 * as bus job consumers, with /metrics, /healthz and /readyz. SIGTERM/SIGINT stop taking jobs,
 * abort the running ones (they are redelivered elsewhere) and exit.
 *
 * Environment: NATS_URL, ABL_STORE (s3://bucket[/prefix]) with ABL_S3_ENDPOINT,
 * ABL_S3_ACCESS_KEY, ABL_S3_SECRET_KEY (ABL_S3_REGION); KUBE_NAMESPACE (task pods);
 * ABL_BENCH_CONCURRENCY (bench jobs at once, default 1); METRICS_PORT (9464); LOG_LEVEL (info).
 */
import { createKubernetesEnvironment } from "@abl/bench";
import { createNatsBus } from "@abl/bus";
import { createBenchStep, evalStep, type StepDefinition, startStepWorkers } from "@abl/pipeline";
import { openStore } from "@abl/store";
import { createLogger, createMetrics, startTelemetryServer } from "@abl/telemetry";
import { KubeConfig } from "@kubernetes/client-node";

const env = process.env;
function required(name: string): string {
  const v = env[name];
  if (!v) throw new Error(`environment variable ${name} is required`);
  return v;
}
function positive(name: string, fallback: number): number {
  const v = Number(env[name] ?? fallback);
  if (!Number.isInteger(v) || v < 0)
    throw new Error(`${name}=${env[name]} is not a non-negative integer`);
  return v;
}

const log = createLogger({ service: "runner", level: (env.LOG_LEVEL ?? "info") as "info" });
const registry = createMetrics({ service: "runner" });
const store = openStore(required("ABL_STORE"), {
  endpoint: required("ABL_S3_ENDPOINT"),
  accessKey: required("ABL_S3_ACCESS_KEY"),
  secretKey: required("ABL_S3_SECRET_KEY"),
  region: env.ABL_S3_REGION ?? "us-east-1",
});
const bus = await createNatsBus({ servers: required("NATS_URL"), name: "abl-runner" });
const kubeConfig = new KubeConfig();
kubeConfig.loadFromDefault();
const namespace = required("KUBE_NAMESPACE");
const bench = createBenchStep((task, trialId) =>
  createKubernetesEnvironment(task, trialId, {
    kubeConfig,
    namespace,
    labels: { "app.kubernetes.io/component": "task" },
  }),
);
const workers = startStepWorkers({
  bus,
  store,
  sweep: "runner",
  definitions: [bench, evalStep] as unknown as StepDefinition<never, unknown>[],
  registry,
  concurrency: { bench: positive("ABL_BENCH_CONCURRENCY", 1), "refusal-eval": 2 },
});
let stopping = false;
const telemetry = await startTelemetryServer({
  port: positive("METRICS_PORT", 9464),
  registry,
  ready: () => !stopping,
});
const shutdown = async (sig: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal: sig }, "runner stopping");
  await workers.stop();
  await bus.close();
  await telemetry.close();
};
process.once("SIGTERM", () => void shutdown("SIGTERM"));
process.once("SIGINT", () => void shutdown("SIGINT"));
log.info({ store: store.location, namespace }, "runner consuming bench and refusal-eval steps");
