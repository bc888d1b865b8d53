/**
 * Scheduler service process: serves SchedulerService over gRPC, runs sweeps over NATS and the
 * object store, serves variants with sglang through the Kubernetes API, and hosts the light sweep
 * steps (model import, report). Capture, directions and patch steps run in their services; bench
 * and refusal evaluation in the runner. SIGTERM/SIGINT cancel running sweeps and drain.
 *
 * Environment: NATS_URL, ABL_STORE (s3://bucket[/prefix]) with ABL_S3_ENDPOINT, ABL_S3_ACCESS_KEY,
 * ABL_S3_SECRET_KEY (ABL_S3_REGION); ABL_S3_INTERNAL_ENDPOINT and ABL_S3_SECRET_NAME (the endpoint
 * and Secret sglang pods use); KUBE_NAMESPACE; ABL_SGLANG_IMAGE and
 * ABL_SGLANG_STARTUP_BUDGET_SECONDS, ABL_SGLANG_WEIGHT_LOADING, ABL_SGLANG_SHM_MIB (optional); ABL_CACHE_DIR
 * (default /tmp/abl-cache); GRPC_PORT (50051), METRICS_PORT (9464), LOG_LEVEL (info).
 */
import { createNatsBus } from "@abl/bus";
import { createKubeLauncher } from "@abl/kube";
import {
  createSglangServe,
  modelStep,
  reportStep,
  type StepDefinition,
  startStepWorkers,
} from "@abl/pipeline";
import { runGrpcService, SchedulerService } from "@abl/rpc";
import { openStore, parseStoreUrl } from "@abl/store";
import { createLogger, createMetrics } from "@abl/telemetry";
import { KubeConfig } from "@kubernetes/client-node";
import { createSchedulerHandlers } from "./scheduler-handlers.ts";
import { SWEEPS_BUCKET } from "./sweep-records.ts";
import { createSweepRuns } from "./sweep-runs.ts";

const env = process.env;
function required(name: string): string {
  const v = env[name];
  if (!v) throw new Error(`environment variable ${name} is required`);
  return v;
}
function port(name: string, fallback: number): number {
  const v = Number(env[name] ?? fallback);
  if (!Number.isInteger(v) || v < 0 || v > 65535)
    throw new Error(`${name}=${env[name]} is not a port number`);
  return v;
}

const log = createLogger({ service: "scheduler", level: (env.LOG_LEVEL ?? "info") as "info" });
const registry = createMetrics({ service: "scheduler" });
const storeUrl = required("ABL_STORE");
const location = parseStoreUrl(storeUrl);
if (location.kind !== "s3")
  throw new Error(`ABL_STORE must be an s3:// URL on the cluster, got ${storeUrl}`);
const store = openStore(storeUrl, {
  endpoint: required("ABL_S3_ENDPOINT"),
  accessKey: required("ABL_S3_ACCESS_KEY"),
  secretKey: required("ABL_S3_SECRET_KEY"),
  region: env.ABL_S3_REGION ?? "us-east-1",
});
const bus = await createNatsBus({ servers: required("NATS_URL"), name: "abl-scheduler" });
const kv = await bus.kv(SWEEPS_BUCKET, { history: 1 });
const kubeConfig = new KubeConfig();
kubeConfig.loadFromDefault();
const launcher = createKubeLauncher({ kubeConfig, namespace: required("KUBE_NAMESPACE") });
const serve = (sweep: string) =>
  createSglangServe({
    launcher,
    bucket: location.bucket,
    ...(location.prefix ? { storePrefix: location.prefix } : {}),
    s3: {
      endpointUrl: env.ABL_S3_INTERNAL_ENDPOINT ?? required("ABL_S3_ENDPOINT"),
      secretName: required("ABL_S3_SECRET_NAME"),
    },
    sweep,
    ...(env.ABL_SGLANG_IMAGE ? { image: env.ABL_SGLANG_IMAGE } : {}),
    ...(env.ABL_SGLANG_WEIGHT_LOADING === "runai-streamer"
      ? { weightLoading: "runai-streamer" as const }
      : {}),
    ...(env.ABL_SGLANG_SHM_MIB ? { shmMiB: Number(env.ABL_SGLANG_SHM_MIB) } : {}),
    ...(env.ABL_SGLANG_STARTUP_BUDGET_SECONDS
      ? { startupBudgetSeconds: Number(env.ABL_SGLANG_STARTUP_BUDGET_SECONDS) }
      : {}),
  });
const runs = createSweepRuns({
  bus,
  store,
  kv,
  cacheDir: env.ABL_CACHE_DIR ?? "/tmp/abl-cache",
  serve,
  log,
});
const workers = startStepWorkers({
  bus,
  store,
  sweep: "scheduler",
  definitions: [modelStep, reportStep] as unknown as StepDefinition<never, unknown>[],
  registry,
});
const svc = await runGrpcService({
  log,
  registry,
  grpcAddress: `0.0.0.0:${port("GRPC_PORT", 50051)}`,
  telemetryPort: port("METRICS_PORT", 9464),
  register: (server) => server.add(SchedulerService, createSchedulerHandlers({ bus, kv, runs })),
  onShutdown: async () => {
    await runs.stopAll();
    await workers.stop();
    await bus.close();
  },
});
log.info({ grpcPort: svc.grpcPort, store: store.location }, "scheduler listening");
