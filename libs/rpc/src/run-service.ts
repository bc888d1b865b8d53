import { startTelemetryServer, type TelemetryServer } from "@abl/telemetry";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import {
  createServer,
  DEFAULT_SHUTDOWN_GRACE_MS,
  type RpcServer,
  type ServerOptions,
} from "./server.ts";

/** Options for {@link runGrpcService}. */
export interface RunGrpcServiceOptions
  extends Pick<ServerOptions, "errorCodes" | "interceptors" | "channelOptions"> {
  log: Logger;
  /** The process registry (from `createMetrics`), served on `/metrics` and fed by gRPC metrics. */
  registry: Registry;
  /** gRPC listen address, e.g. `0.0.0.0:50051` (`:0` picks a port). */
  grpcAddress: string;
  /** Port of the /metrics, /healthz, /readyz server (0 picks one). */
  telemetryPort: number;
  /** Interface for the telemetry server; default `0.0.0.0`. */
  telemetryHost?: string;
  /** Adds the service implementations, e.g. `(s) => s.add(PatcherService, impl)`. */
  register: (server: RpcServer) => void;
  /** Extra readiness (e.g. "bus connected"); `/readyz` is also 503 once shutdown begins. */
  ready?: () => boolean | Promise<boolean>;
  /**
   * Runs after the gRPC server has stopped and before the telemetry server closes: drain the
   * bus, close stores. Errors are logged; shutdown carries on.
   */
  onShutdown?: () => Promise<void>;
  /** Grace period for in-flight calls; default {@link DEFAULT_SHUTDOWN_GRACE_MS}. */
  graceMs?: number;
  /** Process signals that start shutdown; default SIGTERM and SIGINT. `[]` installs none. */
  signals?: readonly NodeJS.Signals[];
}

/** A running service process. */
export interface RunningGrpcService {
  readonly server: RpcServer;
  readonly grpcPort: number;
  readonly telemetry: TelemetryServer;
  /** Aborted when shutdown begins; pass it to bus consumers and background loops. */
  readonly signal: AbortSignal;
  /** Starts shutdown (as a signal would) and resolves when everything is closed. Idempotent. */
  stop(reason?: string): Promise<void>;
  /** Resolves when shutdown has finished, whoever started it. */
  readonly stopped: Promise<void>;
}

/**
 * Runs a service's gRPC server and its telemetry server together and handles SIGTERM/SIGINT:
 * readiness drops to 503, in-flight handlers are aborted and drained (forced after the grace
 * period), `onShutdown` runs (drain NATS, close clients), then the telemetry server closes.
 * It never calls `process.exit`: once everything is closed the event loop empties.
 *
 * @example
 * // services/patcher/src/main.ts
 * const log = createLogger({ service: "patcher", level: "info" });
 * const registry = createMetrics({ service: "patcher" });
 * const bus = await connectBus(process.env.NATS_URL);
 * const svc = await runGrpcService({
 *   log,
 *   registry,
 *   grpcAddress: `0.0.0.0:${process.env.GRPC_PORT ?? 50051}`,
 *   telemetryPort: Number(process.env.METRICS_PORT ?? 9464),
 *   register: (server) => server.add(PatcherService, createPatcherHandlers({ bus, log })),
 *   ready: () => bus.isConnected(),
 *   onShutdown: () => bus.drain(),
 * });
 * consumePatchJobs(bus, { signal: svc.signal });
 */
export async function runGrpcService(options: RunGrpcServiceOptions): Promise<RunningGrpcService> {
  const { log, registry } = options;
  const server = createServer({
    log,
    registry,
    ...(options.errorCodes ? { errorCodes: options.errorCodes } : {}),
    ...(options.interceptors ? { interceptors: options.interceptors } : {}),
    ...(options.channelOptions ? { channelOptions: options.channelOptions } : {}),
  });
  options.register(server);
  const telemetry = await startTelemetryServer({
    port: options.telemetryPort,
    ...(options.telemetryHost ? { host: options.telemetryHost } : {}),
    registry,
    log,
    ready: async () => !server.signal.aborted && (options.ready ? await options.ready() : true),
  });
  let grpcPort: number;
  try {
    grpcPort = await server.listen(options.grpcAddress);
  } catch (err) {
    await Promise.allSettled([server.shutdown({ graceMs: 0 }), telemetry.close()]);
    throw err;
  }

  const signals = options.signals ?? ["SIGTERM", "SIGINT"];
  let stopping: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });
  const stop = (reason = "stop requested") => {
    stopping ??= (async () => {
      log.info({ reason }, "shutting down");
      await server.shutdown({ graceMs: options.graceMs ?? DEFAULT_SHUTDOWN_GRACE_MS });
      if (options.onShutdown) {
        try {
          await options.onShutdown();
        } catch (err) {
          log.error({ err }, "shutdown hook failed");
        }
      }
      await telemetry.close();
      for (const s of signals) process.off(s, onSignal);
      log.info("stopped");
      resolveStopped();
    })();
    return stopping;
  };
  function onSignal(signal: NodeJS.Signals) {
    if (stopping) {
      log.warn({ signal }, "second signal during shutdown; still draining");
      return;
    }
    void stop(signal);
  }
  for (const s of signals) process.on(s, onSignal);
  log.info({ grpcPort, telemetryPort: telemetry.port }, "service started");
  return { server, grpcPort, telemetry, signal: server.signal, stop, stopped };
}
