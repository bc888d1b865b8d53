import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createMemoryBus, TerminalJobError } from "@abl/bus";
import { createLocalStore, readArtifact } from "@abl/store";
import {
  runStep,
  type StepDefinition,
  StepFailedError,
  startStepWorkers,
  stepLocation,
} from "./step-runner.ts";

async function setup(defs: StepDefinition<never, unknown>[]) {
  const dir = await mkdtemp(join(tmpdir(), "abl-steps-"));
  const store = createLocalStore({ root: dir, fsync: false });
  const bus = createMemoryBus();
  const opts = { bus, store, sweep: "s1", definitions: defs };
  const workers = startStepWorkers({ ...opts, maxDeliver: 2, concurrency: { square: 2 } });
  return {
    opts,
    store,
    async close() {
      await workers.stop();
      await bus.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

test("a step runs once, writes its artifact, and is served from the store afterwards", async () => {
  let runs = 0;
  const square: StepDefinition<{ x: number }, { y: number }> = {
    kind: "square",
    version: 1,
    prefix: "squares",
    async *run(p, ctx) {
      runs++;
      yield { done: 0, total: 1, unit: "numbers" };
      await ctx.writer.addFile("value.txt", new TextEncoder().encode(String(p.x * p.x)));
      yield { done: 1, total: 1, unit: "numbers" };
      return { y: p.x * p.x };
    },
  };
  const env = await setup([square as StepDefinition<never, unknown>]);
  try {
    const [a, b] = await Promise.all([
      runStep<{ y: number }>(env.opts, "square", { x: 7 }),
      runStep<{ y: number }>(env.opts, "square", { x: 7 }),
    ]);
    assert.equal(a.result.y, 49);
    assert.equal(b.result.y, 49);
    assert.equal(runs, 1, "the same step asked twice at once runs once");
    const again = await runStep<{ y: number }>(env.opts, "square", { x: 7 });
    assert.equal(again.cached, true);
    assert.equal(runs, 1);
    const m = await readArtifact(env.store, a.prefix);
    assert.deepEqual(
      m?.files.map((f) => f.name),
      ["value.txt"],
    );
    const other = await runStep<{ y: number }>(env.opts, "square", { x: 3 });
    assert.equal(other.result.y, 9);
    assert.notEqual(other.key, a.key);
    assert.equal(runs, 2);
  } finally {
    await env.close();
  }
});

test("a failing step is retried, then reported as failed with nothing published", async () => {
  let attempts = 0;
  const flaky: StepDefinition<{ fail: "always" | "once" }, string> = {
    kind: "flaky",
    version: 1,
    prefix: "flaky",
    async *run(p, ctx) {
      attempts++;
      await ctx.writer.addFile("partial.bin", new Uint8Array([1, 2, 3]));
      if (p.fail === "always" || ctx.attempt === 1)
        throw new Error(`boom on attempt ${ctx.attempt}`);
      yield { done: 1, total: 1, unit: "x" };
      return "ok";
    },
  };
  const terminal: StepDefinition<Record<string, never>, string> = {
    kind: "terminal",
    version: 1,
    prefix: "terminal",
    // biome-ignore lint/correctness/useYield: the step fails before it has progress to report
    async *run() {
      throw new TerminalJobError("bad input: layer 99 is beyond the model's 30 layers");
    },
  };
  const env = await setup([flaky, terminal] as StepDefinition<never, unknown>[]);
  try {
    const ok = await runStep<string>(env.opts, "flaky", { fail: "once" });
    assert.equal(ok.result, "ok");
    assert.equal(attempts, 2);
    await assert.rejects(runStep(env.opts, "flaky", { fail: "always" }), (e: unknown) => {
      assert.ok(e instanceof StepFailedError);
      assert.match(e.message, /boom on attempt 2/);
      return true;
    });
    const { prefix } = stepLocation(flaky as StepDefinition<never, unknown>, { fail: "always" });
    assert.equal(await readArtifact(env.store, prefix), undefined);
    const leftovers = [];
    for await (const o of env.store.list(`${prefix}/`)) leftovers.push(o.key);
    assert.deepEqual(leftovers, [], "the aborted writer removed its files");
    await assert.rejects(runStep(env.opts, "terminal", {}), /layer 99 is beyond/);
  } finally {
    await env.close();
  }
});

test("a step that publishes its own artifact keeps its manifest and returns its metadata", async () => {
  const own: StepDefinition<{ n: number }, unknown> = {
    kind: "own",
    version: 1,
    prefix: "own",
    async *run(p, ctx) {
      yield { done: 0, total: 1, unit: "x" };
      const { publishArtifact } = await import("@abl/store");
      const m = await publishArtifact(
        ctx.store,
        ctx.prefix,
        [{ name: "a.bin", body: new Uint8Array([p.n]) }],
        {
          kind: "own-kind",
          n: p.n,
        },
      );
      return m.meta;
    },
  };
  const env = await setup([own as StepDefinition<never, unknown>]);
  try {
    const r = await runStep<{ kind: string; n: number }>(env.opts, "own", { n: 5 });
    assert.deepEqual(r.result, { kind: "own-kind", n: 5 });
    const m = await readArtifact(env.store, r.prefix);
    assert.equal(m?.meta.kind, "own-kind");
    assert.deepEqual(
      m?.files.map((f) => f.name),
      ["a.bin"],
    );
    const again = await runStep<{ kind: string; n: number }>(env.opts, "own", { n: 5 });
    assert.equal(again.cached, true);
    assert.deepEqual(again.result, { kind: "own-kind", n: 5 });
  } finally {
    await env.close();
  }
});

test("step jobs are measured: durations by kind and outcome, pending jobs back to zero", async () => {
  const { Registry } = await import("prom-client");
  const registry = new Registry();
  const quick: StepDefinition<{ n: number }, number> = {
    kind: "quick",
    version: 1,
    prefix: "quick",
    async *run(p) {
      yield { done: 1, total: 1, unit: "x" };
      return p.n;
    },
  };
  const dir = await mkdtemp(join(tmpdir(), "abl-steps-"));
  const store = createLocalStore({ root: dir, fsync: false });
  const bus = createMemoryBus();
  const opts = {
    bus,
    store,
    sweep: "m",
    definitions: [quick as StepDefinition<never, unknown>],
    registry,
  };
  const workers = startStepWorkers(opts);
  try {
    await runStep(opts, "quick", { n: 1 });
    await runStep(opts, "quick", { n: 1 });
    const text = await registry.metrics();
    assert.match(text, /abl_job_duration_seconds_count\{kind="quick",outcome="succeeded"\} 1/);
    assert.match(text, /abl_jobs_pending\{kind="quick"\} 0/);
  } finally {
    await workers.stop();
    await bus.close();
    await rm(dir, { recursive: true, force: true });
  }
});
