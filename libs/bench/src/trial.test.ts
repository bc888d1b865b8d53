import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLocalStore, type ObjectStore } from "@abl/store";
import { createOracleAgent } from "./agent.ts";
import { createLocalEnvironment } from "./env-local.ts";
import type { EnvironmentFactory } from "./environment.ts";
import { EnvironmentError } from "./errors.ts";
import { LOCAL_TASKS_DIR } from "./local-tasks.ts";
import { loadTask, type Task } from "./task.ts";
import { readTrialResult, runTrial } from "./trial.ts";

let tmp: string;
let task: Task;
let store: ObjectStore;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "abl-trial-"));
  task = await loadTask(join(LOCAL_TASKS_DIR, "merge-json-config"));
  store = createLocalStore({ root: join(tmp, "store"), fsync: false });
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Fails `start` the first `failures` times, then behaves like the local sandbox. */
function flaky(failures: number): EnvironmentFactory {
  let n = 0;
  return (t, id) => {
    const env = createLocalEnvironment(t, id);
    return {
      ...env,
      get workdir() {
        return env.workdir;
      },
      start: async (s) => {
        if (n++ < failures) throw new EnvironmentError(`image pull failed (simulated, start ${n})`);
        await env.start(s);
      },
    };
  };
}

describe("trial", () => {
  it("retries an environment error and then scores normally", async () => {
    const r = await runTrial(
      { trialId: "flaky1", variant: "v", replica: 0, task, agent: createOracleAgent() },
      { envFactory: flaky(1), store, prefix: "t", retryBackoffMs: 5 },
    );
    assert.equal(r.outcome, "passed", r.detail);
    assert.equal(r.attempts, 2);
    const err = JSON.parse(
      await readFile(join(tmp, "store", "t", "flaky1", "attempts", "1", "error.json"), "utf8"),
    );
    assert.match(err.detail, /simulated, start 1/);
  });

  it("a persistent environment error is recorded with a null reward, never 0", async () => {
    const r = await runTrial(
      { trialId: "broken", variant: "v", replica: 0, task, agent: createOracleAgent() },
      { envFactory: flaky(99), store, prefix: "t", retryBackoffMs: 5, maxAttempts: 3 },
    );
    assert.equal(r.outcome, "environment_error");
    assert.equal(r.reward, null);
    assert.equal(r.attempts, 3);
    assert.deepEqual(await readTrialResult(store, "t", "broken"), r);
    assert.equal(await readTrialResult(store, "t", "absent"), undefined);
  });

  it("cancellation aborts the trial without writing a result", async () => {
    const ac = new AbortController();
    const p = runTrial(
      { trialId: "cancelled", variant: "v", replica: 0, task, agent: createOracleAgent() },
      { envFactory: createLocalEnvironment, store, prefix: "t", signal: ac.signal },
    );
    ac.abort(new Error("stop"));
    await assert.rejects(p, /stop/);
    await assert.rejects(stat(join(tmp, "store", "t", "cancelled", "result.json")));
  });
});
