/**
 * Directions service process: reads its environment, connects the bus and the store, serves
 * DirectionsService over gRPC and consumes `directions` jobs. SIGTERM/SIGINT drain and exit.
 *
 * Environment: NATS_URL (required), ABL_STORE (s3://bucket or a folder, required),
 * ABL_S3_ENDPOINT / ABL_S3_ACCESS_KEY / ABL_S3_SECRET_KEY / ABL_S3_REGION for s3:// stores,
 * ABL_MODEL_CACHE (default $TMPDIR/abl-models; the causal policy runs the model),
 * ABL_MODEL_CACHE_BYTES (default 64 GiB), GRPC_PORT (default 50051),
 * METRICS_PORT (default 9464), LOG_LEVEL (default info).
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNatsBus } from "@abl/bus";
import { directionsStep, type StepDefinition, startStepWorkers } from "@abl/pipeline";
import { createModelCache, DEFAULT_MODEL_CACHE_BYTES } from "@abl/refusal";
import { DirectionsService, runGrpcService } from "@abl/rpc";
import { openStore, s3FromEnv } from "@abl/store";
import { createLogger, createMetrics } from "@abl/telemetry";
import { consumeDirectionsJobs } from "./directions-consumer.ts";
import { createDirectionsHandlers } from "./directions-handlers.ts";
import { DIRECTIONS_JOBS_BUCKET } from "./job-records.ts";

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

function positiveInt(name: string, fallback: number): number {
  const v = Number(env[name] ?? fallback);
  if (!Number.isSafeInteger(v) || v < 1)
    throw new Error(`${name}=${env[name]} is not a positive integer`);
  return v;
}

const log = createLogger({ service: "directions", level: (env.LOG_LEVEL ?? "info") as "info" });
const registry = createMetrics({ service: "directions" });
const store = openStore(required("ABL_STORE"), s3FromEnv(env));
const bus = await createNatsBus({ servers: required("NATS_URL"), name: "abl-directions" });
const kv = await bus.kv(DIRECTIONS_JOBS_BUCKET, { history: 1 });
const controller = new AbortController();
const svc = await runGrpcService({
  log,
  registry,
  grpcAddress: `0.0.0.0:${port("GRPC_PORT", 50051)}`,
  telemetryPort: port("METRICS_PORT", 9464),
  register: (server) => server.add(DirectionsService, createDirectionsHandlers({ bus, store, kv })),
  onShutdown: async () => {
    controller.abort();
    await consumer.stop();
    await sweepSteps.stop();
    await bus.close();
  },
});
const consumer = consumeDirectionsJobs({
  bus,
  store,
  kv,
  log,
  models: createModelCache({
    store,
    dir: env.ABL_MODEL_CACHE ?? join(tmpdir(), "abl-models"),
    maxBytes: positiveInt("ABL_MODEL_CACHE_BYTES", DEFAULT_MODEL_CACHE_BYTES),
  }),
  signal: AbortSignal.any([svc.signal, controller.signal]),
});
// The directions steps of sweeps the scheduler runs (queue abl.job.step-directions).
const sweepSteps = startStepWorkers({
  bus,
  store,
  sweep: "directions",
  definitions: [directionsStep] as unknown as StepDefinition<never, unknown>[],
  registry,
});

consumer.done.catch(async (err: unknown) => {
  log.error({ err }, "job consumer failed; shutting down");
  process.exitCode = 1;
  await svc.stop("job consumer failed");
});
log.info({ grpcPort: svc.grpcPort, store: store.location }, "directions listening");
