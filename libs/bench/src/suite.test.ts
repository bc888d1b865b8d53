import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLocalStore } from "@abl/store";
import { type Agent, createNopAgent, createOracleAgent } from "./agent.ts";
import { createLocalEnvironment } from "./env-local.ts";
import type { EnvironmentFactory } from "./environment.ts";
import { LOCAL_TASKS_DIR } from "./local-tasks.ts";
import { planTrials, runSuite, type SuiteEvent, type SuiteSummary, trialIdFor } from "./suite.ts";
import { loadTaskDir, type Task } from "./task.ts";

let tmp: string;
let tasks: Task[];
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "abl-suite-"));
  tasks = await loadTaskDir(LOCAL_TASKS_DIR, { only: ["hello-file", "merge-json-config"] });
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Same endpoint for both arms, so the per-endpoint limit binds. */
const onEndpoint = (a: Agent, endpoint: string): Agent => ({
  ...a,
  model: { ...a.model, endpoint },
});

async function drain(gen: AsyncGenerator<SuiteEvent, SuiteSummary>) {
  const events: SuiteEvent[] = [];
  for (;;) {
    const n = await gen.next();
    if (n.done) return { events, summary: n.value };
    events.push(n.value);
  }
}

describe("suite runner", () => {
  it("plans replica-major with variants interleaved per task, with deterministic ids", () => {
    const variants = [
      { name: "base", agent: createNopAgent() },
      { name: "abl", agent: createNopAgent() },
    ];
    const plan = planTrials({ runId: "r1", tasks, variants, replicas: 2 });
    assert.deepEqual(
      plan.map((p) => `${p.replica}:${p.task.id}:${p.variant.name}`),
      [
        "0:hello-file:base",
        "0:hello-file:abl",
        "0:merge-json-config:base",
        "0:merge-json-config:abl",
        "1:hello-file:base",
        "1:hello-file:abl",
        "1:merge-json-config:base",
        "1:merge-json-config:abl",
      ],
    );
    assert.equal(plan[0]!.trialId, trialIdFor("r1", "base", tasks[0]!, 0));
    assert.notEqual(trialIdFor("r2", "base", tasks[0]!, 0), plan[0]!.trialId);
    assert.equal(new Set(plan.map((p) => p.trialId)).size, 8);
  });

  it("runs, limits concurrency per endpoint, reports progress, and resumes by skipping", async () => {
    const store = createLocalStore({ root: join(tmp, "store"), fsync: false });
    let live = 0;
    let peak = 0;
    const envFactory: EnvironmentFactory = (t, id) => {
      const env = createLocalEnvironment(t, id);
      return {
        ...env,
        get workdir() {
          return env.workdir;
        },
        start: async (s) => {
          live++;
          peak = Math.max(peak, live);
          await env.start(s);
        },
        stop: async () => {
          live--;
          await env.stop();
        },
      };
    };
    const variants = [
      { name: "oracle", agent: onEndpoint(createOracleAgent(), "http://x") },
      { name: "nop", agent: onEndpoint(createNopAgent(), "http://x") },
    ];
    const opts = {
      runId: "r1",
      tasks,
      variants,
      replicas: 2,
      store,
      envFactory,
      concurrency: 4,
      perEndpointConcurrency: 2,
    };
    const { events, summary } = await drain(runSuite(opts));
    assert.equal(events[0]!.type, "planned");
    const started = events.filter((e) => e.type === "trial_started");
    assert.equal(started.length, 8);
    assert.ok(peak <= 2 && peak >= 1, `peak ${peak}`);
    const finished = events.filter((e) => e.type === "trial_finished");
    assert.deepEqual(
      finished.map((e) => (e.type === "trial_finished" ? e.done : 0)).sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.equal(summary.byVariant.oracle!.passed, 4);
    assert.equal(summary.byVariant.oracle!.meanReward, 1);
    assert.equal(summary.byVariant.nop!.passed, 0);
    assert.equal(summary.byVariant.nop!.scored, 4);

    const again = await drain(runSuite(opts));
    assert.equal(again.events.filter((e) => e.type === "trial_started").length, 0);
    assert.equal(again.events.filter((e) => e.type === "trial_skipped").length, 8);
    assert.equal(again.summary.skipped, 8);
    assert.equal(again.summary.byVariant.oracle!.passed, 4);
  });

  it("rejects bad names and counts", async () => {
    const store = createLocalStore({ root: join(tmp, "s2"), fsync: false });
    const base = { runId: "r", tasks, replicas: 1, store, envFactory: createLocalEnvironment };
    await assert.rejects(
      drain(runSuite({ ...base, variants: [{ name: "a/b", agent: createNopAgent() }] })),
      /variant name "a\/b"/,
    );
    await assert.rejects(
      drain(runSuite({ ...base, replicas: 0, variants: [{ name: "a", agent: createNopAgent() }] })),
      /replicas must be a positive integer, got 0/,
    );
  });
});
