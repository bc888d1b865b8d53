// Overhead of @abl/rpc over bare @grpc/grpc-js, measured side by side in one process.
// Baseline: the same protobuf-es codec served by grpc-js directly with callback handlers (what a
// service would write without this lib: no ctx.signal, no interceptors, no status mapping).
// Ours: createServer/createClient with logging + metrics interceptors and per-call contexts.
// Prints unary latency (sequential), unary throughput (concurrent) and stream throughput, and
// the ratio ours/baseline for each. Run: npm run bench:rpc

import { createLogger, createMetrics } from "@abl/telemetry";
import {
  Client,
  credentials,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
} from "@grpc/grpc-js";
import {
  CaptureService,
  createClient,
  createServer,
  type StartCaptureRequest,
  type WatchCaptureRequest,
} from "../src/index.ts";
import {
  deserializer,
  methodPath,
  serializer,
  serviceDefinition,
} from "../src/service-definition.ts";

/** Sequential unary calls per round (latency). */
const SEQUENTIAL_CALLS = 500;
/** Unary calls per round at CONCURRENCY in flight (throughput). */
const CONCURRENT_CALLS = 2_000;
const CONCURRENCY = 32;
/** Messages in the streamed round. */
const STREAM_MESSAGES = 10_000;
/** Rounds per variant, interleaved; the best round counts (least disturbed by other load). */
const ROUNDS = 3;

const request = {
  model: { hubId: "Qwen/Qwen3-0.6B", revision: "main", digest: "a".repeat(64) },
  positions: [-1],
  batchSize: 8,
  sweepId: "bench",
};
const response = { jobId: "job-1", stepKey: "k".repeat(64), cached: false };
const event = (i: number) => ({
  event: { jobId: "job-1", step: "capture", done: BigInt(i), total: 1000n, unit: "prompts" },
});

interface Endpoint {
  unary(): Promise<unknown>;
  stream(n: number): Promise<number>;
  close(): Promise<void>;
}

async function bareGrpc(): Promise<Endpoint> {
  const server = new Server();
  server.addService(serviceDefinition(CaptureService), {
    startCapture: (
      _call: ServerUnaryCall<StartCaptureRequest, object>,
      cb: sendUnaryData<object>,
    ) => cb(null, response),
    getCapture: (_call: ServerUnaryCall<object, object>, cb: sendUnaryData<object>) => cb(null, {}),
    watchCapture: (call: ServerWritableStream<WatchCaptureRequest, object>) => {
      const n = Number(call.request.jobId);
      let i = 0;
      const pump = () => {
        while (i < n) if (!call.write(event(i++))) return void call.once("drain", pump);
        call.end();
      };
      pump();
    },
  });
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) =>
      e ? rej(e) : res(p),
    ),
  );
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  const [start, , watch] = CaptureService.methods;
  if (!start || !watch) throw new Error("CaptureService lacks its methods");
  return {
    unary: () =>
      new Promise((res, rej) =>
        client.makeUnaryRequest(
          methodPath(start),
          serializer(start.input),
          deserializer(start.output),
          request,
          (e, r) => (e ? rej(e) : res(r)),
        ),
      ),
    stream: async (n) => {
      let count = 0;
      const call = client.makeServerStreamRequest(
        methodPath(watch),
        serializer(watch.input),
        deserializer(watch.output),
        { jobId: String(n) },
      );
      for await (const _ of call) count++;
      return count;
    },
    close: async () => {
      client.close();
      await new Promise<void>((res) => server.tryShutdown(() => res()));
    },
  };
}

async function ablRpc(): Promise<Endpoint> {
  // Real logger at info to /dev/null-like sink: the per-call log line is part of the cost.
  const log = createLogger({ service: "bench", level: "info", destination: { write: () => {} } });
  const server = createServer({ log, registry: createMetrics({ service: "bench" }) });
  server.add(CaptureService, {
    startCapture: async () => response,
    getCapture: async () => ({}),
    async *watchCapture(req) {
      const n = Number(req.jobId);
      for (let i = 0; i < n; i++) yield event(i);
    },
  });
  const port = await server.listen("127.0.0.1:0");
  const client = createClient(CaptureService, { address: `127.0.0.1:${port}` });
  return {
    unary: () => client.startCapture(request),
    stream: async (n) => {
      let count = 0;
      for await (const _ of client.watchCapture({ jobId: String(n) })) count++;
      return count;
    },
    close: async () => {
      client.close();
      await server.shutdown({ graceMs: 1_000 });
    },
  };
}

interface Result {
  /** Process CPU time (client and server together) per unary call: robust on a busy machine. */
  cpuUsPerCall: number;
  p50Us: number;
  p99Us: number;
  unaryPerSec: number;
  streamPerSec: number;
}

async function measure(endpoint: Endpoint): Promise<Result> {
  for (let i = 0; i < 100; i++) await endpoint.unary(); // warm-up: connection, JIT
  const lat: number[] = [];
  for (let i = 0; i < SEQUENTIAL_CALLS; i++) {
    const t = process.hrtime.bigint();
    await endpoint.unary();
    lat.push(Number(process.hrtime.bigint() - t) / 1e3);
  }
  lat.sort((a, b) => a - b);
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < CONCURRENT_CALLS) await endpoint.unary();
    }),
  );
  const unarySec = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const t1 = process.hrtime.bigint();
  const got = await endpoint.stream(STREAM_MESSAGES);
  if (got !== STREAM_MESSAGES) throw new Error(`stream delivered ${got} of ${STREAM_MESSAGES}`);
  const streamSec = Number(process.hrtime.bigint() - t1) / 1e9;
  return {
    cpuUsPerCall: (cpu.user + cpu.system) / CONCURRENT_CALLS,
    p50Us: lat[Math.floor(lat.length * 0.5)] ?? 0,
    p99Us: lat[Math.floor(lat.length * 0.99)] ?? 0,
    unaryPerSec: CONCURRENT_CALLS / unarySec,
    streamPerSec: STREAM_MESSAGES / streamSec,
  };
}

function best(results: Result[]): Result {
  return {
    cpuUsPerCall: Math.min(...results.map((r) => r.cpuUsPerCall)),
    p50Us: Math.min(...results.map((r) => r.p50Us)),
    p99Us: Math.min(...results.map((r) => r.p99Us)),
    unaryPerSec: Math.max(...results.map((r) => r.unaryPerSec)),
    streamPerSec: Math.max(...results.map((r) => r.streamPerSec)),
  };
}

const bare: Result[] = [];
const ours: Result[] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const [make, sink] of [
    [bareGrpc, bare],
    [ablRpc, ours],
  ] as const) {
    const endpoint = await make();
    try {
      const result = await measure(endpoint);
      sink.push(result);
      console.error(`round ${round + 1} ${make.name}: ${JSON.stringify(result)}`);
    } finally {
      await endpoint.close();
    }
  }
}
const b = best(bare);
const o = best(ours);
const row = (name: string, base: number, mine: number, unit: string, lowerIsBetter: boolean) =>
  `${name.padEnd(26)} ${base.toFixed(0).padStart(9)} ${mine.toFixed(0).padStart(9)} ${unit.padEnd(6)} ratio ours/bare ${(mine / base).toFixed(2)} (${lowerIsBetter ? "lower" : "higher"} is better)`;
console.log(`rpc-bench: best of ${ROUNDS} interleaved rounds, loopback, one process`);
console.log(`${"".padEnd(26)} ${"bare".padStart(9)} ${"@abl/rpc".padStart(9)}`);
console.log(row("unary CPU per call", b.cpuUsPerCall, o.cpuUsPerCall, "us", true));
console.log(row("unary latency p50", b.p50Us, o.p50Us, "us", true));
console.log(row("unary latency p99", b.p99Us, o.p99Us, "us", true));
console.log(
  row(`unary throughput (c=${CONCURRENCY})`, b.unaryPerSec, o.unaryPerSec, "call/s", false),
);
console.log(row("stream throughput", b.streamPerSec, o.streamPerSec, "msg/s", false));
