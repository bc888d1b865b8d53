import { randomUUID } from "node:crypto";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import {
  type ChannelOptions,
  Server,
  ServerCredentials,
  type ServerInterceptor,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { cancelCause, deadlineMs } from "./deadline.ts";
import { Health } from "./gen/grpc/health/v1/health_pb.ts";
import { createHealthService, type HealthStatus } from "./health.ts";
import { loggingInterceptor, metricsInterceptor } from "./interceptors.ts";
import { methodPath, RpcConfigError, serviceDefinition } from "./service-definition.ts";
import { Code, codeName, RpcError, type StatusMappingOptions, toGrpcStatus } from "./status.ts";
import type { AnyHandler, HandlerContext, ServiceImpl } from "./types.ts";

/**
 * Time `shutdown()` lets in-flight calls finish before forcing them closed. Kubernetes gives a pod
 * 30 s between SIGTERM and SIGKILL by default; 10 s leaves room for draining the bus afterwards.
 */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;

/**
 * Largest request or response message accepted (grpc-js's own default). Tensors never travel
 * over gRPC; requests carry object-store keys, so anything bigger is a bug or an attack.
 */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * Longest delay Node's setTimeout honours (2^31-1 ms, about 24.8 days); a longer one fires at
 * once. A deadline further away than that is treated as none.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options for {@link createServer}. */
export interface ServerOptions extends StatusMappingOptions {
  /** Logger; each call gets a child with `rpc` and `rpcId`. */
  log: Logger;
  /** Registry for the gRPC server metrics; omit to record none. */
  registry?: Registry;
  /** Extra grpc-js server interceptors, run after logging and metrics. */
  interceptors?: ServerInterceptor[];
  /** Extra grpc-js server options (keepalive and the like). */
  channelOptions?: ChannelOptions;
}

/** Options for {@link RpcServer.shutdown}. */
export interface ShutdownOptions {
  /** How long in-flight calls may take to finish; default {@link DEFAULT_SHUTDOWN_GRACE_MS}. */
  graceMs?: number;
}

/** A gRPC server for protobuf-es services. */
export interface RpcServer {
  /** Registers a service (before `listen`); its health status becomes SERVING. */
  add<S extends DescService>(service: S, impl: ServiceImpl<S>): RpcServer;
  /** Binds `host:port` (port 0 picks one), starts serving and resolves to the bound port. */
  listen(address: string, credentials?: ServerCredentials): Promise<number>;
  /** grpc.health.v1 statuses; `""` is the whole server. */
  readonly health: HealthStatus;
  /** Aborted when shutdown begins; every handler's `ctx.signal` follows it. */
  readonly signal: AbortSignal;
  /**
   * Graceful shutdown: health goes NOT_SERVING, every in-flight handler's signal aborts
   * (UNAVAILABLE), the server stops accepting calls and waits up to `graceMs` for in-flight
   * calls to finish, then force-closes the rest. Idempotent.
   */
  shutdown(options?: ShutdownOptions): Promise<void>;
}

/**
 * Waits until the client has read enough for writes to go on (HTTP/2 flow control), or until
 * the call ends (client gone, server force-closed), whichever comes first.
 */
function drained(call: ServerWritableStream<unknown, unknown>): Promise<void> {
  if (call.cancelled || call.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const events = ["drain", "cancelled", "close", "error"] as const;
    const done = () => {
      for (const e of events) call.off(e, done);
      resolve();
    };
    for (const e of events) call.on(e, done);
  });
}

/**
 * Creates a gRPC server for protobuf-es service descriptors on @grpc/grpc-js. Handlers are
 * `(req, ctx) => Promise<Res>` (unary) or `async function*` (server streaming); errors they throw
 * go through {@link toGrpcStatus}, with the full error in the log. grpc.health.v1 is served too.
 *
 * @example
 * const server = createServer({ log, registry });
 * server.add(CaptureService, { startCapture, getCapture, watchCapture });
 * const port = await server.listen("0.0.0.0:50051");
 * process.once("SIGTERM", () => void server.shutdown());
 */
export function createServer(options: ServerOptions): RpcServer {
  const { log } = options;
  const interceptors: ServerInterceptor[] = [loggingInterceptor(log)];
  if (options.registry) interceptors.push(metricsInterceptor(options.registry));
  interceptors.push(...(options.interceptors ?? []));
  const server = new Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    ...options.channelOptions,
    interceptors,
  });
  const lifetime = new AbortController();
  const health = createHealthService();
  const added = new Set<string>();
  let listening = false;
  let stopping: Promise<void> | undefined;

  /** Builds the context of one call; `dispose` must run when the handler is done. */
  const context = (
    method: DescMethod,
    call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>,
  ) => {
    const controller = new AbortController();
    const deadline = deadlineMs(call.getDeadline());
    const abort = (code: "CANCELLED" | "DEADLINE_EXCEEDED" | "UNAVAILABLE", message: string) => {
      if (!controller.signal.aborted) controller.abort(new RpcError(code, message));
    };
    const onCancelled = () => {
      // grpc-js reports a call ended by its deadline as cancelled; tell the two apart.
      const cause = cancelCause(deadline);
      abort(cause, cause === "CANCELLED" ? "call cancelled by the client" : "deadline exceeded");
    };
    const onShutdown = () => abort("UNAVAILABLE", "server is shutting down");
    call.on("cancelled", onCancelled);
    lifetime.signal.addEventListener("abort", onShutdown, { once: true });
    const remaining = deadline === undefined ? undefined : deadline - Date.now();
    const timer =
      remaining === undefined || remaining > MAX_TIMER_MS
        ? undefined
        : setTimeout(() => abort("DEADLINE_EXCEEDED", "deadline exceeded"), remaining);
    if (call.cancelled) onCancelled();
    if (lifetime.signal.aborted) onShutdown();
    const path = methodPath(method).slice(1);
    const rpcId = call.metadata.get("x-request-id")[0]?.toString() || randomUUID();
    let callLog: Logger | undefined;
    const ctx: HandlerContext = {
      signal: controller.signal,
      // Made on first use: most handlers of a healthy service never log.
      get log() {
        callLog ??= log.child({ rpc: path, rpcId });
        return callLog;
      },
      method: path,
      deadline,
      metadata: call.metadata,
      peer: call.getPeer(),
    };
    const dispose = () => {
      clearTimeout(timer);
      call.off("cancelled", onCancelled);
      lifetime.signal.removeEventListener("abort", onShutdown);
    };
    return { ctx, dispose };
  };

  /**
   * The status for a failure; an aborted call reports why it was aborted. Unexpected errors
   * (INTERNAL) are logged at error with the full error; errors mapped to a client-facing code
   * at info, since they describe the request rather than a fault of the service.
   */
  const failure = (err: unknown, ctx: HandlerContext) => {
    const status = toGrpcStatus(ctx.signal.aborted ? ctx.signal.reason : err, options);
    if (ctx.signal.aborted) {
      ctx.log.debug({ err, code: codeName(status.code) }, "handler ended after abort");
    } else if (status.code === Code.INTERNAL) {
      ctx.log.error({ err, code: codeName(status.code) }, "handler failed");
    } else {
      ctx.log.info({ err, code: codeName(status.code) }, "handler rejected the request");
    }
    return status;
  };

  const unary =
    (method: DescMethod, handler: AnyHandler) =>
    (call: ServerUnaryCall<never, object>, callback: sendUnaryData<object>) => {
      const { ctx, dispose } = context(method, call);
      Promise.resolve()
        .then(() => handler(call.request, ctx) as Promise<object>)
        .then(
          (response) => {
            // The caller is gone (cancel or deadline): report that, not a success nobody reads,
            // so logs and metrics agree with what the client saw. After a shutdown abort the
            // caller is still there and a finished result is worth sending.
            const reason: unknown = ctx.signal.reason;
            if (reason instanceof RpcError && reason.code !== "UNAVAILABLE") {
              callback(failure(reason, ctx));
            } else callback(null, response);
          },
          (err: unknown) => callback(failure(err, ctx)),
        )
        .finally(dispose);
    };

  const serverStreaming =
    (method: DescMethod, handler: AnyHandler) => (call: ServerWritableStream<never, object>) => {
      const { ctx, dispose } = context(method, call);
      const run = async () => {
        const responses = handler(call.request, ctx) as AsyncIterable<object>;
        for await (const response of responses) {
          if (call.cancelled) break;
          if (!call.write(response)) await drained(call);
        }
        // A stream that stops because the server is going away must not look complete.
        if (ctx.signal.aborted) throw ctx.signal.reason;
      };
      run()
        .then(
          () => call.end(),
          (err: unknown) => call.emit("error", failure(err, ctx)),
        )
        .finally(dispose);
    };

  const rpcServer: RpcServer = {
    add(service, impl) {
      if (listening) {
        throw new RpcConfigError(`cannot add ${service.typeName} after listen()`);
      }
      if (added.has(service.typeName)) {
        throw new RpcConfigError(`service ${service.typeName} is already added`);
      }
      const definition = serviceDefinition(service);
      const handlers: UntypedServiceImplementation = {};
      const implementation = impl as unknown as Record<string, AnyHandler | undefined>;
      for (const method of service.methods) {
        const handler = implementation[method.localName];
        if (typeof handler !== "function") {
          throw new RpcConfigError(
            `implementation of ${service.typeName} lacks a handler for ${method.name} (key "${method.localName}")`,
          );
        }
        // grpc-js types handlers over `any` messages; ours are typed per method above.
        handlers[method.localName] = (
          method.methodKind === "unary" ? unary(method, handler) : serverStreaming(method, handler)
        ) as UntypedServiceImplementation[string];
      }
      server.addService(definition, handlers);
      added.add(service.typeName);
      if (service.typeName !== Health.typeName) health.set(service.typeName, "SERVING");
      return rpcServer;
    },
    async listen(address, credentials = ServerCredentials.createInsecure()) {
      if (stopping) throw new RpcConfigError("cannot listen after shutdown()");
      const port = await new Promise<number>((resolve, reject) => {
        server.bindAsync(address, credentials, (err, bound) =>
          err
            ? reject(
                new RpcConfigError(`cannot listen on ${address}: ${err.message}`, { cause: err }),
              )
            : resolve(bound),
        );
      });
      listening = true;
      health.set("", "SERVING");
      log.info({ address, port }, "grpc server listening");
      return port;
    },
    health,
    signal: lifetime.signal,
    shutdown({ graceMs = DEFAULT_SHUTDOWN_GRACE_MS } = {}) {
      stopping ??= new Promise<void>((resolve) => {
        health.drain();
        lifetime.abort(new RpcError("UNAVAILABLE", "server is shutting down"));
        const timer = setTimeout(() => {
          log.warn({ graceMs }, "grpc calls still running after the grace period; forcing close");
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown((err) => {
          clearTimeout(timer);
          if (err) log.warn({ err }, "grpc graceful shutdown reported an error");
          resolve();
        });
      }).then(() => log.info("grpc server stopped"));
      return stopping;
    },
  };
  rpcServer.add(Health, health.impl);
  return rpcServer;
}
