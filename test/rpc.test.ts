// End-to-end tests of @abl/rpc: real grpc-js servers and clients over loopback, no mocks.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import {
  CaptureEngine,
  CaptureService,
  createClient,
  createServer,
  type HandlerContext,
  Health,
  JobState,
  RpcConfigError,
  RpcError,
  type RpcServer,
  type ServiceImpl,
  HealthCheckResponse_ServingStatus as Serving,
} from "@abl/rpc";
import { createLogger, createMetrics } from "@abl/telemetry";

/** A promise with its resolver, for handing what a handler saw back to the test. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function logCapture() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { stream, text: () => chunks.join("") };
}

/** Waits until the signal aborts and reports the reason's code. */
function abortedCode(ctx: HandlerContext): Promise<string> {
  return new Promise((resolve) => {
    const report = () => resolve((ctx.signal.reason as RpcError).code);
    if (ctx.signal.aborted) report();
    else ctx.signal.addEventListener("abort", report, { once: true });
  });
}

class ObjectNotFoundError extends Error {
  override name = "ObjectNotFoundError";
}
class StoreError extends Error {
  override name = "StoreError";
}
class InvalidKeyError extends StoreError {
  override name = "InvalidKeyError";
}

/** What the current test expects the handlers to do; each test sets the hooks it needs. */
interface Hooks {
  unary?: (ctx: HandlerContext) => Promise<void>;
  stream?: (ctx: HandlerContext) => AsyncGenerator<number>;
  get?: (jobId: string) => Promise<void>;
}

// A broken abort path would hang rather than fail; the timeout turns a hang into a failure.
const HANG_GUARD = { timeout: 20_000 };
/**
 * Deadline for the deadline tests: long enough that the handler starts before it passes even on
 * a loaded machine (the tests assert what happens at the deadline, never how long it took).
 */
const DEADLINE_MS = 1_000;

describe("rpc over loopback", () => {
  const logs = logCapture();
  const log = createLogger({ service: "rpc-test", level: "debug", destination: logs.stream });
  const registry = createMetrics({ service: "rpc-test", defaultMetrics: false });
  let hooks: Hooks = {};
  let server: RpcServer;
  let address: string;

  const impl: ServiceImpl<typeof CaptureService> = {
    async startCapture(req, ctx) {
      await hooks.unary?.(ctx);
      const spec = req.contrastSet.case === "contrastSpec" ? req.contrastSet.value.preset : "";
      return {
        jobId: `job-${req.model?.hubId}-${spec}-${req.positions.join(",")}-${req.batchSize}`,
        stepKey: "k".repeat(64),
        cached: req.engine === CaptureEngine.TRANSFORMERS,
      };
    },
    async getCapture(req) {
      await hooks.get?.(req.jobId);
      return { status: { jobId: req.jobId, state: JobState.SUCCEEDED } };
    },
    async *watchCapture(req, ctx) {
      const source = hooks.stream?.(ctx);
      if (!source) return;
      for await (const done of source) {
        yield { event: { jobId: req.jobId, done: BigInt(done), total: 3n, unit: "prompts" } };
      }
    },
  };

  before(async () => {
    server = createServer({
      log,
      registry,
      errorCodes: { StoreError: "UNAVAILABLE" },
    });
    server.add(CaptureService, impl);
    const port = await server.listen("127.0.0.1:0");
    address = `127.0.0.1:${port}`;
  });
  after(() => server.shutdown({ graceMs: 2_000 }));

  test("unary call carries request fields and returns the response", HANG_GUARD, async () => {
    hooks = {};
    const client = createClient(CaptureService, { address });
    try {
      const res = await client.startCapture({
        model: { hubId: "org/model", revision: "main" },
        contrastSet: { case: "contrastSpec", value: { preset: "agent-shell" } },
        positions: [-1, -2],
        engine: CaptureEngine.TRANSFORMERS,
        batchSize: 8,
      });
      assert.equal(res.jobId, "job-org/model-agent-shell--1,-2-8");
      assert.equal(res.stepKey.length, 64);
      assert.equal(res.cached, true);
    } finally {
      client.close();
    }
  });

  test(
    "unary deadline: the client gets DEADLINE_EXCEEDED and the handler sees the abort",
    HANG_GUARD,
    async () => {
      const seen = deferred<string>();
      const seenDeadline = deferred<number | undefined>();
      hooks = {
        unary: async (ctx) => {
          seenDeadline.resolve(ctx.deadline);
          seen.resolve(await abortedCode(ctx));
        },
      };
      const client = createClient(CaptureService, { address });
      try {
        await assert.rejects(
          client.startCapture({}, { timeoutMs: DEADLINE_MS }),
          (e: unknown) => e instanceof RpcError && e.code === "DEADLINE_EXCEEDED",
        );
        assert.equal(typeof (await seenDeadline.promise), "number");
        assert.equal(await seen.promise, "DEADLINE_EXCEEDED");
      } finally {
        client.close();
      }
    },
  );

  test(
    "unary client cancel: the client gets CANCELLED and the handler sees the abort",
    HANG_GUARD,
    async () => {
      const started = deferred<void>();
      const seen = deferred<string>();
      hooks = {
        unary: async (ctx) => {
          started.resolve();
          seen.resolve(await abortedCode(ctx));
        },
      };
      const client = createClient(CaptureService, { address });
      const controller = new AbortController();
      try {
        const call = client.startCapture({}, { signal: controller.signal });
        await started.promise;
        controller.abort();
        await assert.rejects(call, (e: unknown) => e instanceof RpcError && e.code === "CANCELLED");
        assert.equal(await seen.promise, "CANCELLED");
        await assert.rejects(
          client.startCapture({}, { signal: controller.signal }),
          (e: unknown) => e instanceof RpcError && e.code === "CANCELLED",
        );
      } finally {
        client.close();
      }
    },
  );

  test("server streaming delivers every event in order and ends", HANG_GUARD, async () => {
    hooks = {
      stream: async function* () {
        yield 1;
        yield 2;
        yield 3;
      },
    };
    const client = createClient(CaptureService, { address });
    try {
      const got: bigint[] = [];
      for await (const { event } of client.watchCapture({ jobId: "j" })) {
        assert.equal(event?.jobId, "j");
        got.push(event?.done ?? -1n);
      }
      assert.deepEqual(got, [1n, 2n, 3n]);
    } finally {
      client.close();
    }
  });

  test(
    "streaming deadline: events arrive, then DEADLINE_EXCEEDED; the generator sees the abort",
    HANG_GUARD,
    async () => {
      const seen = deferred<string>();
      const cleaned = deferred<void>();
      hooks = {
        stream: async function* (ctx) {
          try {
            yield 1;
            seen.resolve(await abortedCode(ctx));
          } finally {
            cleaned.resolve();
          }
        },
      };
      const client = createClient(CaptureService, { address });
      const got: bigint[] = [];
      try {
        await assert.rejects(
          (async () => {
            for await (const { event } of client.watchCapture(
              { jobId: "j" },
              { timeoutMs: DEADLINE_MS },
            )) {
              got.push(event?.done ?? -1n);
            }
          })(),
          (e: unknown) => e instanceof RpcError && e.code === "DEADLINE_EXCEEDED",
        );
        // On a loaded machine the deadline can pass before the first event is read; what must
        // hold is that nothing but that event arrived and the stream ended with the deadline.
        assert.ok(got.length <= 1 && got.every((d) => d === 1n), `unexpected events ${got}`);
        assert.equal(await seen.promise, "DEADLINE_EXCEEDED");
        await cleaned.promise;
      } finally {
        client.close();
      }
    },
  );

  test(
    "streaming client cancel (abort signal and early break) aborts the generator",
    HANG_GUARD,
    async () => {
      for (const how of ["signal", "break"] as const) {
        const seen = deferred<string>();
        hooks = {
          stream: async function* (ctx) {
            yield 1;
            seen.resolve(await abortedCode(ctx));
          },
        };
        const client = createClient(CaptureService, { address });
        const controller = new AbortController();
        try {
          const iterate = async () => {
            for await (const _ of client.watchCapture(
              { jobId: "j" },
              { signal: controller.signal },
            )) {
              if (how === "signal") controller.abort();
              else break;
            }
          };
          if (how === "signal") {
            await assert.rejects(
              iterate(),
              (e: unknown) => e instanceof RpcError && e.code === "CANCELLED",
            );
          } else {
            await iterate();
          }
          assert.equal(await seen.promise, "CANCELLED", how);
        } finally {
          client.close();
        }
      }
    },
  );

  test(
    "streams honour flow control and a cancel reaches a writer blocked on it",
    HANG_GUARD,
    async () => {
      // 300 x 16 KiB is far beyond HTTP/2's 64 KiB window, so the server must wait for drains.
      const payload = "x".repeat(16 * 1024);
      const total = 300;
      let produced = 0;
      const cleaned = deferred<string>();
      hooks = {
        stream: async function* (ctx) {
          try {
            for (let i = 0; i < total; i++) {
              produced = i + 1;
              yield i;
            }
          } finally {
            cleaned.resolve(ctx.signal.aborted ? (ctx.signal.reason as RpcError).code : "none");
          }
        },
      };
      const big = {
        ...impl,
        async *watchCapture(req: { jobId: string }, ctx: HandlerContext) {
          for await (const { event } of impl.watchCapture(req as never, ctx)) {
            yield { event: { ...event, message: payload } };
          }
        },
      };
      const server2 = createServer({ log });
      server2.add(CaptureService, big as ServiceImpl<typeof CaptureService>);
      const address2 = `127.0.0.1:${await server2.listen("127.0.0.1:0")}`;
      const client = createClient(CaptureService, { address: address2 });
      try {
        let n = 0;
        for await (const { event } of client.watchCapture({ jobId: "j" })) {
          assert.equal(event?.message.length, payload.length);
          n++;
        }
        assert.equal(n, total);
        assert.equal(await cleaned.promise, "none");

        const cleanedOnCancel = deferred<string>();
        hooks = {
          stream: async function* (ctx) {
            try {
              for (let i = 0; i < total; i++) {
                produced = i + 1;
                yield i;
              }
            } finally {
              cleanedOnCancel.resolve(
                ctx.signal.aborted ? (ctx.signal.reason as RpcError).code : "none",
              );
            }
          },
        };
        produced = 0;
        const controller = new AbortController();
        await assert.rejects(
          (async () => {
            let seen = 0;
            for await (const _ of client.watchCapture(
              { jobId: "j" },
              { signal: controller.signal },
            )) {
              // Stop reading until the server is blocked on flow control, then cancel.
              if (++seen === 1) await new Promise((r) => setTimeout(r, 300));
              if (seen === 1) controller.abort();
            }
          })(),
          (e: unknown) => e instanceof RpcError && e.code === "CANCELLED",
        );
        assert.equal(await cleanedOnCancel.promise, "CANCELLED");
        assert.ok(
          produced < total,
          `the writer produced all ${produced} events despite the cancel`,
        );
      } finally {
        client.close();
        await server2.shutdown({ graceMs: 2_000 });
      }
    },
  );

  test("errors map to status codes; internal details stay in the log", HANG_GUARD, async () => {
    const cases: Array<[Error, string, string]> = [
      [new ObjectNotFoundError("no object at models/abc"), "NOT_FOUND", "no object at models/abc"],
      [
        new InvalidKeyError("key '../x' escapes the root"),
        "UNAVAILABLE",
        "key '../x' escapes the root",
      ],
      [
        new RpcError("FAILED_PRECONDITION", "job is still running"),
        "FAILED_PRECONDITION",
        "job is still running",
      ],
      [new Error("ENOENT: /var/lib/abl/secret-path"), "INTERNAL", "internal error"],
    ];
    const client = createClient(CaptureService, { address });
    try {
      for (const [thrown, code, message] of cases) {
        hooks = {
          get: async () => {
            throw thrown;
          },
        };
        await assert.rejects(client.getCapture({ jobId: "j" }), (e: unknown) => {
          assert.ok(e instanceof RpcError, `expected an RpcError, got ${String(e)}`);
          assert.equal(e.code, code);
          assert.equal(e.message, message);
          return true;
        });
      }
      hooks = {
        get: async () => {
          throw new RpcError("INVALID_ARGUMENT", "bad request", {
            fields: { batch_size: "must be 1..4096, got 0" },
          });
        },
      };
      await assert.rejects(client.getCapture({ jobId: "j" }), (e: unknown) => {
        assert.ok(e instanceof RpcError, `expected an RpcError, got ${String(e)}`);
        assert.equal(e.code, "INVALID_ARGUMENT");
        assert.deepEqual(e.fields, { batch_size: "must be 1..4096, got 0" });
        return true;
      });
      assert.match(logs.text(), /ENOENT: \/var\/lib\/abl\/secret-path/);
      assert.match(logs.text(), /"msg":"handler failed"/);
    } finally {
      client.close();
    }
  });

  test("metrics count calls by method and code", HANG_GUARD, async () => {
    // Counter values carry no metricName; histogram values name their series (`_count`, ...).
    const series = (await registry.getMetricsAsJSON()).flatMap((m) =>
      m.values.map((v) => ({ ...v, name: (v as { metricName?: string }).metricName ?? m.name })),
    );
    const count = (name: string, method: string, code: string) =>
      series
        .filter(
          (v) =>
            v.name === name &&
            v.labels.method === `abliterate.v1.CaptureService/${method}` &&
            v.labels.code === code &&
            v.labels.service === "rpc-test",
        )
        .reduce((sum, v) => sum + v.value, 0);
    assert.ok(
      count("abl_grpc_server_handled_total", "StartCapture", "OK") >= 1,
      `no abl_grpc_server_handled_total for StartCapture OK`,
    );
    assert.ok(
      count("abl_grpc_server_handled_total", "StartCapture", "DEADLINE_EXCEEDED") >= 1,
      `no abl_grpc_server_handled_total for StartCapture DEADLINE_EXCEEDED`,
    );
    assert.ok(
      count("abl_grpc_server_handled_total", "StartCapture", "CANCELLED") >= 1,
      `no abl_grpc_server_handled_total for StartCapture CANCELLED`,
    );
    assert.ok(
      count("abl_grpc_server_handled_total", "WatchCapture", "DEADLINE_EXCEEDED") >= 1,
      `no abl_grpc_server_handled_total for WatchCapture DEADLINE_EXCEEDED`,
    );
    assert.ok(
      count("abl_grpc_server_handled_total", "GetCapture", "NOT_FOUND") >= 1,
      `no abl_grpc_server_handled_total for GetCapture NOT_FOUND`,
    );
    assert.ok(
      count("abl_grpc_server_handled_total", "GetCapture", "INTERNAL") >= 1,
      `no abl_grpc_server_handled_total for GetCapture INTERNAL`,
    );
    assert.ok(
      count("abl_grpc_server_handling_seconds_count", "GetCapture", "NOT_FOUND") >= 1,
      `no abl_grpc_server_handling_seconds_count for GetCapture NOT_FOUND`,
    );
  });

  test(
    "listen on a port in use fails with RpcConfigError naming the address",
    HANG_GUARD,
    async () => {
      const other = createServer({ log });
      try {
        await assert.rejects(
          other.listen(address),
          (e: unknown) =>
            e instanceof RpcConfigError && e.message.includes(`cannot listen on ${address}`),
        );
      } finally {
        await other.shutdown({ graceMs: 1_000 });
      }
    },
  );

  test(
    "grpc.health.v1 Check answers per service and NOT_FOUND for unknown ones",
    HANG_GUARD,
    async () => {
      const health = createClient(Health, { address });
      try {
        assert.equal((await health.check({ service: "" })).status, Serving.SERVING);
        assert.equal(
          (await health.check({ service: "abliterate.v1.CaptureService" })).status,
          Serving.SERVING,
        );
        await assert.rejects(
          health.check({ service: "abliterate.v1.Nope" }),
          (e: unknown) => e instanceof RpcError && e.code === "NOT_FOUND",
        );
      } finally {
        health.close();
      }
    },
  );

  test("grpc.health.v1 Watch streams changes", HANG_GUARD, async () => {
    const health = createClient(Health, { address });
    const controller = new AbortController();
    try {
      const seen: Serving[] = [];
      const unknown = health.watch({ service: "abliterate.v1.Later" })[Symbol.asyncIterator]();
      assert.equal((await unknown.next()).value?.status, Serving.SERVICE_UNKNOWN);
      server.health.set("abliterate.v1.Later", "NOT_SERVING");
      assert.equal((await unknown.next()).value?.status, Serving.NOT_SERVING);
      await unknown.return?.();
      for await (const { status } of health.watch(
        { service: "abliterate.v1.CaptureService" },
        { signal: controller.signal },
      )) {
        seen.push(status);
        if (seen.length === 1) server.health.set("abliterate.v1.CaptureService", "NOT_SERVING");
        if (seen.length === 2) break;
      }
      assert.deepEqual(seen, [Serving.SERVING, Serving.NOT_SERVING]);
    } finally {
      server.health.set("abliterate.v1.CaptureService", "SERVING");
      health.close();
    }
  });
});

describe("graceful shutdown", () => {
  const log = createLogger({ service: "rpc-test", level: "silent" });

  test(
    "aborts in-flight streams with UNAVAILABLE, marks health NOT_SERVING, then stops",
    HANG_GUARD,
    async () => {
      const streaming = deferred<void>();
      const seen = deferred<string>();
      const server = createServer({ log });
      server.add(CaptureService, {
        startCapture: async () => ({}),
        getCapture: async () => ({}),
        async *watchCapture(_req, ctx) {
          yield { event: { done: 1n } };
          streaming.resolve();
          seen.resolve(await abortedCode(ctx));
        },
      });
      const address = `127.0.0.1:${await server.listen("127.0.0.1:0")}`;
      const client = createClient(CaptureService, { address });
      const health = createClient(Health, { address });
      try {
        const healthStatuses: Serving[] = [];
        const watchingHealth = (async () => {
          try {
            for await (const { status } of health.watch({ service: "" }))
              healthStatuses.push(status);
          } catch (e) {
            return e;
          }
          return undefined;
        })();
        const events: bigint[] = [];
        const consuming = (async () => {
          for await (const { event } of client.watchCapture({ jobId: "j" })) {
            events.push(event?.done ?? -1n);
          }
        })();
        await streaming.promise;
        const stopped = server.shutdown({ graceMs: 5_000 });
        assert.equal(await seen.promise, "UNAVAILABLE");
        await assert.rejects(
          consuming,
          (e: unknown) => e instanceof RpcError && e.code === "UNAVAILABLE",
        );
        assert.deepEqual(events, [1n]);
        await stopped;
        const healthEnd = await watchingHealth;
        assert.ok(
          healthEnd instanceof RpcError && healthEnd.code === "UNAVAILABLE",
          `health watch ended with ${String(healthEnd)}`,
        );
        assert.deepEqual(healthStatuses, [Serving.SERVING, Serving.NOT_SERVING]);
        assert.equal(server.signal.aborted, true);
        await assert.rejects(
          client.startCapture({}, { timeoutMs: 2_000 }),
          (e: unknown) => e instanceof RpcError && e.code === "UNAVAILABLE",
        );
      } finally {
        client.close();
        health.close();
        await server.shutdown();
      }
    },
  );

  test(
    "forces handlers that ignore the abort closed after the grace period",
    HANG_GUARD,
    async () => {
      const started = deferred<void>();
      const release = deferred<void>();
      const server = createServer({ log });
      server.add(CaptureService, {
        async startCapture() {
          started.resolve();
          await release.promise;
          return {};
        },
        getCapture: async () => ({}),
        async *watchCapture() {},
      });
      const address = `127.0.0.1:${await server.listen("127.0.0.1:0")}`;
      const client = createClient(CaptureService, { address });
      try {
        const call = client.startCapture({});
        await started.promise;
        await server.shutdown({ graceMs: 100 });
        await assert.rejects(call, (e: unknown) => e instanceof RpcError && e.code !== "OK");
      } finally {
        release.resolve();
        client.close();
      }
    },
  );
});
