import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";

/** Options for {@link startTelemetryServer}. */
export interface TelemetryServerOptions {
  /** TCP port; 0 picks a free one (tests). */
  port: number;
  /** Interface to bind; default `0.0.0.0` so Prometheus and the kubelet can reach it. */
  host?: string;
  /** Registry served on `/metrics`. */
  registry: Registry;
  /** Readiness check for `/readyz`; a throw or a `false` answers 503. Default: always ready. */
  ready?: () => boolean | Promise<boolean>;
  /** Logger for failed checks and scrapes. */
  log?: Logger;
}

/** A running telemetry HTTP server. */
export interface TelemetryServer {
  /** The bound port (useful with `port: 0`). */
  readonly port: number;
  /** Base URL, e.g. `http://127.0.0.1:9464`. */
  readonly url: string;
  /** Stops listening and closes open connections; resolves once the socket is closed. */
  close(): Promise<void>;
}

/**
 * A readiness check that hangs would turn into a probe timeout; past this the answer is 503.
 * 900 ms stays below the kubelet's default probe timeout of 1 s, so the probe sees a clear 503.
 */
const READY_TIMEOUT_MS = 900;

async function checkReady(ready: () => boolean | Promise<boolean>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), READY_TIMEOUT_MS);
  });
  try {
    return (await Promise.race([Promise.resolve().then(ready), timeout])) === true;
  } finally {
    clearTimeout(timer);
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  res.end(body);
}

/**
 * Starts the small HTTP server every process exposes: `/metrics` (Prometheus text format),
 * `/healthz` (liveness: the event loop answers) and `/readyz` (the `ready` callback).
 * Resolves once listening.
 */
export async function startTelemetryServer(
  options: TelemetryServerOptions,
): Promise<TelemetryServer> {
  const { registry, log } = options;
  const ready = options.ready ?? (() => true);
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      send(res, 405, "text/plain", "method not allowed\n");
      return;
    }
    switch (path) {
      case "/metrics":
        send(res, 200, registry.contentType, await registry.metrics());
        return;
      case "/healthz":
        send(res, 200, "text/plain", "ok\n");
        return;
      case "/readyz": {
        let ok = false;
        try {
          ok = await checkReady(ready);
        } catch (err) {
          log?.warn({ err }, "readiness check failed");
        }
        send(res, ok ? 200 : 503, "text/plain", ok ? "ready\n" : "not ready\n");
        return;
      }
      default:
        send(res, 404, "text/plain", "not found\n");
    }
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log?.error({ err, url: req.url }, "telemetry request failed");
      if (!res.headersSent) send(res, 500, "text/plain", "internal error\n");
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "0.0.0.0", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host ?? "0.0.0.0";
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  let closing: Promise<void> | undefined;
  return {
    port,
    url: `http://${urlHost.includes(":") ? `[${urlHost}]` : urlHost}:${port}`,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Keep-alive connections from scrapers would otherwise hold close() open.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
