/**
 * Patcher service process: reads its environment, connects the bus and the store, serves
 * PatcherService over gRPC and consumes `patch` jobs. SIGTERM/SIGINT drain and exit.
 *
 * Environment: NATS_URL (required), ABL_STORE (s3://bucket or a folder, required),
 * ABL_S3_ENDPOINT / ABL_S3_ACCESS_KEY / ABL_S3_SECRET_KEY / ABL_S3_REGION for s3:// stores,
 * GRPC_PORT (default 50051), METRICS_PORT (default 9464), LOG_LEVEL (default info).
 */
import { createNatsBus } from "@abl/bus";
import { patchStep, type StepDefinition, startStepWorkers } from "@abl/pipeline";
import { PatcherService, runGrpcService } from "@abl/rpc";
import { openStore, s3FromEnv } from "@abl/store";
import { createLogger, createMetrics } from "@abl/telemetry";
import { PATCH_JOBS_BUCKET } from "./job-records.ts";
import { consumePatchJobs } from "./patch-consumer.ts";
import { createPatcherHandlers } from "./patcher-handlers.ts";

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

const log = createLogger({ service: "patcher", level: (env.LOG_LEVEL ?? "info") as "info" });
const registry = createMetrics({ service: "patcher" });
const store = openStore(required("ABL_STORE"), s3FromEnv(env));
const bus = await createNatsBus({ servers: required("NATS_URL"), name: "abl-patcher" });
const kv = await bus.kv(PATCH_JOBS_BUCKET, { history: 1 });
const controller = new AbortController();
const svc = await runGrpcService({
  log,
  registry,
  grpcAddress: `0.0.0.0:${port("GRPC_PORT", 50051)}`,
  telemetryPort: port("METRICS_PORT", 9464),
  register: (server) => server.add(PatcherService, createPatcherHandlers({ bus, store, kv })),
  onShutdown: async () => {
    controller.abort();
    await consumer.stop();
    await sweepSteps.stop();
    await bus.close();
  },
});
const consumer = consumePatchJobs({
  bus,
  store,
  kv,
  log,
  signal: AbortSignal.any([svc.signal, controller.signal]),
}); // The patch steps of sweeps the scheduler runs (queue abl.job.step-patch).
const sweepSteps = startStepWorkers({
  bus,
  store,
  sweep: "patch",
  definitions: [patchStep] as unknown as StepDefinition<never, unknown>[],
  registry,
});

log.info({ grpcPort: svc.grpcPort, store: store.location }, "patcher listening");
