import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLocalStore } from "@abl/store";
import { createNopAgent, createOracleAgent } from "./agent.ts";
import { createLocalEnvironment } from "./env-local.ts";
import { LOCAL_TASKS_DIR } from "./local-tasks.ts";
import { loadTaskDir, type Task } from "./task.ts";
import { runTrial } from "./trial.ts";

let tmp: string;
let tasks: Task[];
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "abl-lt-"));
  tasks = await loadTaskDir(LOCAL_TASKS_DIR);
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("shipped local tasks in the real sandbox", () => {
  it("has at least 8 tasks with tests and an oracle", () => {
    assert.ok(tasks.length >= 8, `only ${tasks.length} tasks`);
  });

  it("the oracle passes every task and nop passes none", async () => {
    const store = createLocalStore({ root: join(tmp, "store"), fsync: false });
    const envFactory = (t: Task, id: string) => createLocalEnvironment(t, id);
    const run = async (t: Task, agent: ReturnType<typeof createOracleAgent>) =>
      runTrial(
        { trialId: `${t.id}-${agent.info.name}`, variant: "v", replica: 0, task: t, agent },
        { envFactory, store, prefix: "trials", retryBackoffMs: 10 },
      );
    // Two at a time: the machine has 2 cores.
    const results = [];
    for (let i = 0; i < tasks.length; i += 2) {
      results.push(
        ...(await Promise.all(
          tasks
            .slice(i, i + 2)
            .flatMap((t) => [run(t, createOracleAgent()), run(t, createNopAgent())]),
        )),
      );
    }
    for (const r of results) {
      const want = r.agent.name === "oracle" ? "passed" : "failed";
      assert.equal(r.outcome, want, `${r.taskId}/${r.agent.name}: ${r.outcome} ${r.detail}`);
      assert.equal(r.reward, want === "passed" ? 1 : 0);
      assert.equal(r.attempts, 1);
    }
    // The record: config, trajectory, verifier files, result last.
    const t0 = tasks[0]!;
    const base = join(tmp, "store", "trials", `${t0.id}-oracle`);
    const result = JSON.parse(await readFile(join(base, "result.json"), "utf8"));
    assert.equal(result.taskDigest, t0.digest);
    const ctrf = JSON.parse(await readFile(join(base, "verifier", "ctrf.json"), "utf8"));
    assert.equal(ctrf.results.summary.failed, 0);
    assert.equal((await readFile(join(base, "verifier", "reward.txt"), "utf8")).trim(), "1");
    const trace = await readFile(join(base, "agent", "trace.jsonl"), "utf8");
    assert.equal(trace.trim().split("\n").length, 1);
    const oracleLog = await readFile(join(base, "agent", "logs", "oracle.txt"), "utf8");
    assert.equal(typeof oracleLog, "string");
    const config = JSON.parse(await readFile(join(base, "config.json"), "utf8"));
    assert.equal(config.agent.name, "oracle");
  });
});
