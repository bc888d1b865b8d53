import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadDataset, parseDatasetRef } from "./dataset.ts";
import { TaskLoadError } from "./errors.ts";
import { loadTask, loadTaskDir, parseSizeMb, parseTaskConfig } from "./task.ts";

const SAMPLES = new URL("../../../../shared/data/tb2-sample/", import.meta.url).pathname;

// Upstream values from reference/terminal-bench.md §3.1 (agent s, verifier s, cpus, memory).
const EXPECTED: Record<string, [number, number, number, number]> = {
  "cobol-modernization": [900, 900, 1, 2048],
  "fix-git": [900, 900, 1, 2048],
  "git-leak-recovery": [900, 900, 1, 2048],
  "hf-model-inference": [900, 900, 1, 2048],
  "kv-store-grpc": [900, 900, 1, 2048],
  "log-summary-date-ranges": [900, 900, 1, 2048],
  "mcmc-sampling-stan": [1800, 1800, 4, 8192],
  "modernize-scientific-stack": [600, 600, 1, 2048],
  "openssl-selfsigned-cert": [900, 900, 1, 2048],
  "qemu-startup": [900, 900, 1, 4096],
};

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "abl-task-"));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function writeTask(dir: string, toml: string, extra: Record<string, string> = {}) {
  const files: Record<string, string> = {
    "task.toml": toml,
    "instruction.md": "Do it.\n",
    "tests/test.sh": "#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n",
    "solution/solve.sh": "#!/bin/bash\ntrue\n",
    ...extra,
  };
  for (const [p, text] of Object.entries(files)) {
    await mkdir(join(dir, p, ".."), { recursive: true });
    await writeFile(join(dir, p), text);
  }
}

describe("task loading", () => {
  it("loads all ten TB2 samples with their timeouts and resources", async () => {
    const tasks = await loadTaskDir(SAMPLES, { requireRunnable: false });
    assert.deepEqual(tasks.map((t) => t.id).sort(), Object.keys(EXPECTED).sort());
    for (const t of tasks) {
      const [agent, verifier, cpus, mem] = EXPECTED[t.id]!;
      const c = t.config;
      assert.equal(c.schemaVersion, "1.0", t.id);
      assert.equal(c.agentTimeoutSec, agent, t.id);
      assert.equal(c.verifierTimeoutSec, verifier, t.id);
      assert.equal(c.environment.cpus, cpus, t.id);
      assert.equal(c.environment.memoryMb, mem, t.id);
      assert.equal(c.environment.storageMb, 10240, t.id);
      assert.equal(c.environment.dockerImage, `alexgshaw/${t.id}:20251031`);
      assert.equal(c.environment.allowInternet, true);
      assert.match(t.digest, /^sha256:[0-9a-f]{64}$/);
    }
  });

  it("parses the Harbor form", () => {
    const c = parseTaskConfig(`
schema_version = "1.1"
[task]
name = "terminal-bench/fix-git"
keywords = ["git"]
[agent]
timeout_sec = 1200
[verifier]
timeout_sec = 300
[verifier.env]
FOO = "bar"
[environment]
docker_image = "x:1"
cpus = 2
memory_mb = 4096
storage_mb = 10240
gpus = 0
allow_internet = false
[environment.env]
A = "1"
[solution.env]
`);
    assert.equal(c.name, "terminal-bench/fix-git");
    assert.equal(c.agentTimeoutSec, 1200);
    assert.equal(c.verifierTimeoutSec, 300);
    assert.deepEqual(c.verifierEnv, { FOO: "bar" });
    assert.equal(c.environment.memoryMb, 4096);
    assert.equal(c.environment.allowInternet, false);
    assert.deepEqual(c.environment.env, { A: "1" });
  });

  it("converts size strings like Harbor", () => {
    assert.equal(parseSizeMb("2G"), 2048);
    assert.equal(parseSizeMb("512M"), 512);
    assert.equal(parseSizeMb("1.5G"), 1536);
    assert.equal(parseSizeMb("2048K"), 2);
    assert.throws(() => parseSizeMb("lots"), /cannot parse size "lots"/);
  });

  it("rejects malformed task.toml with the file and the problem", async () => {
    assert.throws(
      () => parseTaskConfig("version = \n"),
      (e: Error) => e instanceof TaskLoadError && /invalid TOML/.test(e.message),
    );
    assert.throws(
      () => parseTaskConfig('[agent]\ntimeout_sec = "soon"\n'),
      /timeout_sec must be a number/,
    );
    assert.throws(
      () => parseTaskConfig("[agent]\ntimeout_sec = -5\n"),
      /-5 is below the minimum 1/,
    );
    assert.throws(
      () => parseTaskConfig('[environment]\nmemory = "big"\n'),
      /cannot parse size "big"/,
    );
    assert.throws(() => parseTaskConfig("environment = 3\n"), /\[environment\] must be a table/);
  });

  it("rejects a task without tests/ or solution/", async () => {
    const dir = join(tmp, "no-tests");
    await writeTask(dir, 'version = "1.0"\n');
    await rm(join(dir, "tests"), { recursive: true });
    await assert.rejects(loadTask(dir), /missing tests\/test.sh/);
    await writeTask(dir, 'version = "1.0"\n');
    await rm(join(dir, "solution"), { recursive: true });
    await assert.rejects(loadTask(dir), /missing solution\/solve.sh/);
  });

  it("digest changes with content and not with location", async () => {
    const a = join(tmp, "d1", "same");
    const b = join(tmp, "d2", "same");
    await writeTask(a, 'version = "1.0"\n');
    await writeTask(b, 'version = "1.0"\n');
    const [ta, tb] = [await loadTask(a), await loadTask(b)];
    assert.equal(ta.digest, tb.digest);
    await writeFile(join(b, "tests", "test.sh"), "#!/bin/bash\nexit 1\n");
    assert.notEqual((await loadTask(b)).digest, ta.digest);
  });

  it("loads a dataset from a git URL pinned to a commit, and refuses unpinned refs", async () => {
    const repo = join(tmp, "repo");
    await writeTask(join(repo, "tasks", "t1"), 'version = "1.0"\n[agent]\ntimeout_sec = 60\n');
    const g = (...args: string[]) =>
      execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@t", ...args], { cwd: repo })
        .toString()
        .trim();
    g("init", "-q");
    g("add", ".");
    g("commit", "-q", "-m", "one");
    const commit = g("rev-parse", "HEAD");
    const { tasks } = await loadDataset(`file://${repo}#${commit}:tasks`, {
      cacheDir: join(tmp, "cache"),
    });
    assert.equal(tasks.length, 1);
    assert.equal(tasks[0]!.config.agentTimeoutSec, 60);
    assert.throws(() => parseDatasetRef(`file://${repo}`), /must be pinned/);
    assert.throws(() => parseDatasetRef(`file://${repo}#main`), /full 40-hex sha/);
    await assert.rejects(
      loadDataset(`file://${repo}#${"0".repeat(40)}`, { cacheDir: join(tmp, "cache") }),
      /git fetch failed/,
    );
  });

  it("filters tasks by name and rejects unknown names", async () => {
    await assert.rejects(
      loadTaskDir(SAMPLES, { requireRunnable: false, only: ["nope"] }),
      /unknown task\(s\) nope/,
    );
    await assert.rejects(loadTaskDir(join(tmp, "nowhere")), /nowhere: cannot read dataset folder/);
    await mkdir(join(tmp, "empty"));
    await assert.rejects(loadTaskDir(join(tmp, "empty")), /no task folders \(with task.toml\)/);
    const one = await loadTaskDir(SAMPLES, { requireRunnable: false, only: ["fix-git"] });
    assert.equal(one.length, 1);
  });
});
