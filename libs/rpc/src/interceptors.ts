import {
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  ServerListenerBuilder,
} from "@grpc/grpc-js";
import type { Logger } from "pino";
import { Counter, Histogram, type Registry } from "prom-client";
import { cancelCause, deadlineMs } from "./deadline.ts";
import { Code, codeName } from "./status.ts";

/**
 * Histogram buckets in seconds. Unary Start/Get calls take milliseconds; Watch streams stay open
 * for the length of a job, so the buckets reach five minutes.
 */
const HANDLING_BUCKETS_SECONDS = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
];

/** Health checks arrive every few seconds from probes; their OK lines are logged at debug. */
const QUIET_PREFIX = "grpc.health.v1.";

/** Reports the final status code of each call exactly once, whichever way it ends. */
function onCallEnd(
  call: ServerInterceptingCallInterface,
  done: (code: number) => void,
): ServerInterceptingCall {
  let ended = false;
  const finish = (code: number) => {
    if (ended) return;
    ended = true;
    done(code);
  };
  return new ServerInterceptingCall(call, {
    start(next) {
      // A call ended by grpc-js itself (deadline, client reset) never passes through
      // sendStatus below; it surfaces here as a cancellation.
      next(
        new ServerListenerBuilder()
          .withOnCancel(() => finish(Code[cancelCause(deadlineMs(call.getDeadline()))]))
          .build(),
      );
    },
    sendStatus(status, next) {
      finish(status.code);
      next(status);
    },
  });
}

function methodLabel(path: string): string {
  return path.startsWith("/") ? path.slice(1) : path;
}

/**
 * Server interceptor recording `abl_grpc_server_handling_seconds` (histogram) and
 * `abl_grpc_server_handled_total` (counter), both labelled by `method` and `code` (the code's
 * name). Reuses the metrics if the registry already has them (several servers per process).
 */
export function metricsInterceptor(registry: Registry): ServerInterceptor {
  const histogram =
    (registry.getSingleMetric("abl_grpc_server_handling_seconds") as
      | Histogram<"method" | "code">
      | undefined) ??
    new Histogram({
      name: "abl_grpc_server_handling_seconds",
      help: "Time from receiving a gRPC call to sending its status.",
      labelNames: ["method", "code"],
      buckets: HANDLING_BUCKETS_SECONDS,
      registers: [registry],
    });
  const counter =
    (registry.getSingleMetric("abl_grpc_server_handled_total") as
      | Counter<"method" | "code">
      | undefined) ??
    new Counter({
      name: "abl_grpc_server_handled_total",
      help: "gRPC calls completed on the server, by final status code.",
      labelNames: ["method", "code"],
      registers: [registry],
    });
  return (descriptor, call) => {
    const start = process.hrtime.bigint();
    const method = methodLabel(descriptor.path);
    return onCallEnd(call, (code) => {
      const labels = { method, code: codeName(code) };
      histogram.observe(labels, Number(process.hrtime.bigint() - start) / 1e9);
      counter.inc(labels);
    });
  };
}

/**
 * Server interceptor writing one log line per finished call: method, code, duration, peer.
 * Failures log at warn; the handler wrapper logs the underlying error itself.
 */
export function loggingInterceptor(log: Logger): ServerInterceptor {
  return (descriptor, call) => {
    const start = process.hrtime.bigint();
    const method = methodLabel(descriptor.path);
    return onCallEnd(call, (code) => {
      const line = {
        rpc: method,
        code: codeName(code),
        durationMs: Number(process.hrtime.bigint() - start) / 1e6,
        peer: call.getPeer(),
      };
      if (code !== Code.OK) log.warn(line, "rpc failed");
      else if (method.startsWith(QUIET_PREFIX)) log.debug(line, "rpc done");
      else log.info(line, "rpc done");
    });
  };
}
