/**
 * The cluster shape without a cluster: the scheduler's gRPC service runs a sweep over a real
 * nats-server and a real S3 server (MinIO), with the step workers the services host (capture,
 * directions, patch, bench, report) consuming the sweep's jobs from NATS. The model is the tiny
 * random Llama fixture; the bench uses the oracle agent in the local sandbox, so no model server is
 * needed. A second StartSweep of the same spec is answered as cached; GetSweep and WatchSweep
 * report the steps; a bad spec is INVALID_ARGUMENT naming the problem.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createNatsBus } from "@abl/bus";
import { type StepDefinition, SWEEP_STEPS, startStepWorkers } from "@abl/pipeline";
import { createClient, JobState, RpcError, runGrpcService, SchedulerService } from "@abl/rpc";
import { createS3Store, readArtifact } from "@abl/store";
import { createSchedulerHandlers, createSweepRuns, SWEEPS_BUCKET } from "@abl/svc-scheduler";
import { createLogger, createMetrics } from "@abl/telemetry";
import { type NatsServer, type S3Server, startNats, startS3 } from "./support/servers.ts";

const ABL = fileURLToPath(new URL("../cli/bin/abl.mjs", import.meta.url));
const TINY = fileURLToPath(new URL("../libs/refusal/fixtures/tiny-llama/", import.meta.url));

let nats: NatsServer;
let s3: S3Server;
let cacheDir: string;
before(async () => {
  [nats, s3] = await Promise.all([startNats(), startS3()]);
  cacheDir = await mkdtemp(join(tmpdir(), "abl-sched-"));
});
after(async () => {
  await Promise.all([nats?.stop(), s3?.stop()]);
  await rm(cacheDir, { recursive: true, force: true });
});

function runCli(
  args: string[],
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.once("exit", (status) => resolve({ status, stdout, stderr }));
  });
}

const SPEC = `name: tiny-sweep
model:
  source: ${JSON.stringify(TINY)}
contrast:
  preset: agent-shell
  limit: 12
capture:
  batch_size: 12
variants:
  - name: base
    kind: base
  - name: abl
    kind: abliterated
    layer: selected
refusal:
  enabled: false
bench:
  dataset: builtin
  tasks: [hello-file]
  replicas: 1
  agent: oracle
  concurrency: 2
report:
  bootstrap: 200
`;

test("a sweep runs through the scheduler over NATS and S3, then is served as cached", async () => {
  const log = createLogger({ service: "scheduler-test", level: "warn" });
  const store = createS3Store({
    endpoint: s3.endpoint,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    region: "us-east-1",
    bucket: "abl-test",
  });
  const bus = await createNatsBus({ servers: nats.url, name: "scheduler-test" });
  const kv = await bus.kv(SWEEPS_BUCKET);
  const workerBus = await createNatsBus({ servers: nats.url, name: "workers-test" });
  const workers = startStepWorkers({
    bus: workerBus,
    store,
    sweep: "workers",
    definitions: SWEEP_STEPS as unknown as StepDefinition<never, unknown>[],
  });
  const runs = createSweepRuns({
    bus,
    store,
    kv,
    cacheDir,
    log,
    serve: () => async () => {
      throw new Error("this sweep needs no model server");
    },
  });
  const svc = await runGrpcService({
    log,
    registry: createMetrics({ service: "scheduler-test" }),
    grpcAddress: "127.0.0.1:0",
    telemetryPort: 0,
    telemetryHost: "127.0.0.1",
    signals: [],
    register: (server) => server.add(SchedulerService, createSchedulerHandlers({ bus, kv, runs })),
  });
  const client = createClient(SchedulerService, { address: `127.0.0.1:${svc.grpcPort}` });
  try {
    const bad = await client
      .startSweep({ specYaml: "model: {source: /nope}\nbench: {replicas: 0}\n", sweepId: "bad" })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.ok(bad instanceof RpcError, `expected an RpcError, got ${String(bad)}`);
    assert.equal(bad.code, "INVALID_ARGUMENT");
    assert.match(bad.message, /bench\.replicas/);

    const started = await client.startSweep({ specYaml: SPEC, sweepId: "" });
    assert.equal(started.sweepId, "tiny-sweep");
    assert.equal(started.cached, false);

    let finished: JobState | undefined;
    const kinds = new Set<string>();
    for await (const { event } of client.watchSweep(
      { sweepId: "tiny-sweep" },
      { timeoutMs: 240_000 },
    )) {
      if (event?.event.case === "step") kinds.add(event.event.value.kind);
      if (event?.event.case === "finished") finished = event.event.value.state;
    }
    const got = await client.getSweep({ sweepId: "tiny-sweep" });
    assert.equal(finished, JobState.SUCCEEDED, `sweep ended ${got.status?.error?.message ?? ""}`);
    for (const k of ["model", "capture", "directions", "patch", "bench", "report"]) {
      assert.ok(kinds.has(k), `WatchSweep reported a ${k} step (saw ${[...kinds].join(", ")})`);
    }
    assert.equal(got.status?.state, JobState.SUCCEEDED);
    const variants = got.summary?.variants.map((v) => [v.variant, v.trials, v.passed]);
    const reportPrefix = (got.summary?.report?.key ?? "").replace(/\/report\.html$/, "");
    const trials = new TextDecoder().decode(await store.getBytes(`${reportPrefix}/trials.jsonl`));
    assert.deepEqual(
      variants,
      [
        ["base", 1, 1],
        ["abl", 1, 1],
      ],
      trials,
    );
    const reportKey = got.summary?.report?.key ?? "";
    assert.match(reportKey, /^reports\/[0-9a-f]{64}\/report\.html$/);
    const html = new TextDecoder().decode(await store.getBytes(reportKey));
    assert.match(html, /Refusal directions by layer/);
    assert.ok(await readArtifact(store, reportKey.replace(/\/report\.html$/, "")));

    const again = await client.startSweep({ specYaml: SPEC, sweepId: "tiny-sweep" });
    assert.equal(again.cached, true);

    // The CLI's cluster mode talks to the same scheduler.
    const specFile = join(cacheDir, "tiny.yaml");
    await writeFile(specFile, SPEC);
    // Asynchronous: the scheduler answering it lives in this very process.
    const cli = await runCli([ABL, "run", specFile, "--cluster", `127.0.0.1:${svc.grpcPort}`]);
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stderr, /sweep tiny-sweep \(finished earlier: cached\)/);
    assert.match(cli.stdout, /^base +1\/1 passed$/m);
    assert.match(cli.stdout, /report: reports\/[0-9a-f]{64}\/report\.html/);
  } finally {
    client.close();
    await svc.stop();
    await runs.stopAll();
    await workers.stop();
    await Promise.all([bus.close(), workerBus.close()]);
  }
});
