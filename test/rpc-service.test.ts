// runGrpcService in a real child process: SIGTERM aborts in-flight streams, runs the shutdown
// hook, closes both servers, and the process exits by itself (nothing left holding the loop).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { CaptureService, createClient, RpcError } from "@abl/rpc";

const CHILD = `
import { CaptureService, runGrpcService } from "@abl/rpc";
import { createLogger, createMetrics } from "@abl/telemetry";
const log = createLogger({ service: "child", level: "info" });
const registry = createMetrics({ service: "child" });
await runGrpcService({
  log,
  registry,
  grpcAddress: "127.0.0.1:0",
  telemetryPort: 0,
  telemetryHost: "127.0.0.1",
  register: (server) =>
    server.add(CaptureService, {
      startCapture: async () => ({ jobId: "j1" }),
      getCapture: async () => ({}),
      async *watchCapture(_req, ctx) {
        yield { event: { done: 1n } };
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
        log.info({ reason: ctx.signal.reason.code }, "watch aborted");
      },
    }),
  onShutdown: async () => log.info("shutdown hook ran"),
});
`;

// A broken shutdown path would hang rather than fail; the timeout turns a hang into a failure.
test("runGrpcService serves gRPC and telemetry, and drains on SIGTERM", {
  timeout: 60_000,
}, async () => {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", CHILD], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = once(child, "exit");
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(JSON.parse(line) as Record<string, unknown>);
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = async (msg: string) => {
    for (;;) {
      const found = lines.find((l) => l.msg === msg);
      if (found) return found;
      if (child.exitCode !== null) throw new Error(`child exited before logging "${msg}"`);
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  let client: ReturnType<typeof createClient<typeof CaptureService>> | undefined;
  try {
    const started = await waitFor("service started");
    const address = `127.0.0.1:${started.grpcPort}`;
    const telemetry = `http://127.0.0.1:${started.telemetryPort}`;
    assert.equal((await fetch(`${telemetry}/readyz`)).status, 200);
    client = createClient(CaptureService, { address });
    assert.equal((await client.startCapture({})).jobId, "j1");
    assert.match(
      await (await fetch(`${telemetry}/metrics`)).text(),
      /abl_grpc_server_handled_total\{/,
    );

    const stream = client.watchCapture({ jobId: "j1" })[Symbol.asyncIterator]();
    assert.equal((await stream.next()).value?.event?.done, 1n);
    child.kill("SIGTERM");
    await assert.rejects(
      stream.next(),
      (e: unknown) => e instanceof RpcError && e.code === "UNAVAILABLE",
    );
    const [code, signal] = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0);
    assert.equal((await waitFor("watch aborted")).reason, "UNAVAILABLE");
    await waitFor("shutdown hook ran");
    await waitFor("stopped");
    const order = ["watch aborted", "grpc server stopped", "shutdown hook ran", "stopped"].map(
      (m) => lines.findIndex((l) => l.msg === m),
    );
    assert.deepEqual(
      [...order].sort((a, b) => a - b),
      order,
    );
  } finally {
    client?.close();
    if (child.exitCode === null) child.kill("SIGKILL");
    await exited;
  }
});
