import assert from "node:assert/strict";
import { test } from "node:test";
import { Counter } from "prom-client";
import { createMetrics, startTelemetryServer } from "./index.ts";

test("telemetry server serves /metrics, /healthz, /readyz and closes cleanly", async () => {
  const registry = createMetrics({ service: "patcher", defaultLabels: { zone: "a" } });
  const jobs = new Counter({
    name: "abl_test_jobs_total",
    help: "jobs",
    labelNames: ["kind"],
    registers: [registry],
  });
  jobs.inc({ kind: "patch" }, 2);
  let ready: boolean | Error = false;
  const server = await startTelemetryServer({
    port: 0,
    host: "127.0.0.1",
    registry,
    ready: () => {
      if (ready instanceof Error) throw ready;
      return ready;
    },
  });
  try {
    const metrics = await fetch(`${server.url}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type") ?? "", /text\/plain/);
    const body = await metrics.text();
    assert.match(body, /abl_test_jobs_total\{kind="patch",zone="a",service="patcher"\} 2/);
    assert.match(body, /process_cpu_user_seconds_total\{/);
    assert.match(body, /nodejs_eventloop_lag_seconds\{/);

    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${server.url}/readyz`)).status, 503);
    ready = true;
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
    ready = new Error("store unreachable");
    assert.equal((await fetch(`${server.url}/readyz`)).status, 503);
    assert.equal((await fetch(`${server.url}/nope`)).status, 404);
    assert.equal((await fetch(`${server.url}/metrics`, { method: "POST" })).status, 405);
  } finally {
    await server.close();
  }
  await assert.rejects(fetch(`${server.url}/healthz`));
});

test("createMetrics() without options collects default metrics without labels", async () => {
  const text = await createMetrics().metrics();
  assert.match(text, /^process_cpu_user_seconds_total \d/m);
});

test("two registries in one process keep their series apart", async () => {
  const a = createMetrics({ service: "a", defaultMetrics: false });
  const b = createMetrics({ service: "b", defaultMetrics: false });
  new Counter({ name: "abl_test_only_a_total", help: "a", registers: [a] }).inc();
  assert.match(await a.metrics(), /abl_test_only_a_total\{service="a"\} 1/);
  assert.doesNotMatch(await b.metrics(), /abl_test_only_a_total/);
});
