import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { containerName, createDockerEnvironment } from "./env-docker.ts";
import { LOCAL_TASKS_DIR } from "./local-tasks.ts";
import { loadTask, parseTaskConfig, type Task } from "./task.ts";

let tmp: string;
let fake: string;
let log: string;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "abl-dock-"));
  log = join(tmp, "argv.log");
  fake = join(tmp, "docker");
  // A fake docker CLI (bash, quick to start): records argv; `image inspect` says missing;
  // `exec ... exit 7` fails.
  await writeFile(
    fake,
    `#!/bin/bash
# argv: fields separated by 0x1f, records by 0x1e.
{ printf '%s\\x1f' "$@"; printf '\\x1e'; } >> ${JSON.stringify(log)}
case "$1 $2" in "image inspect") exit 1 ;; esac
[ "$1" = run ] && { echo c0ffee; exit 0; }
last="\${!#}"
if [ "$1" = exec ]; then
  [ "$last" = "exit 7" ] && { echo boom >&2; exit 7; }
  [ "$last" = "sleep 99" ] && [[ " $* " == *" timeout "* ]] && exit 124
  [ "$3" = tmux ] && echo screen
fi
exit 0
`,
  );
  await chmod(fake, 0o755);
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function calls(): Promise<string[][]> {
  return (await readFile(log, "utf8"))
    .split("\x1e")
    .filter((r) => r !== "")
    .map((r) => r.split("\x1f").slice(0, -1));
}

describe("docker environment (fake docker CLI)", () => {
  it("pulls, runs with the task's resources and image WORKDIR, execs, copies, removes", async () => {
    const task = await loadTask(join(LOCAL_TASKS_DIR, "hello-file"));
    const env = createDockerEnvironment(task, "hello.base.r0.abc", { dockerPath: fake });
    await env.start();
    const r = await env.exec("echo hi", { cwd: "/app", env: { A: "1" }, timeoutSec: 30 });
    assert.equal(r.exitCode, 0);
    const bad = await env.exec("exit 7");
    assert.equal(bad.exitCode, 7);
    assert.equal(bad.stderr, "boom\n");
    assert.equal((await env.exec("sleep 99", { timeoutSec: 1 })).timedOut, true);
    assert.equal((await env.tmux(["capture-pane", "-p"])).stdout, "screen\n");
    await env.upload(join(task.dir, "tests"), "/tests");
    await env.download("/logs/verifier", join(tmp, "v"));
    await env.stop();
    const c = await calls();
    const name = containerName("hello.base.r0.abc");
    assert.deepEqual(c[0], ["image", "inspect", "ghcr.io/abliterate/bench-hello-file:1"]);
    assert.deepEqual(c[1], ["pull", "ghcr.io/abliterate/bench-hello-file:1"]);
    assert.deepEqual(c[2], [
      "run",
      "-d",
      "--name",
      name,
      "--label",
      "abl.trial=hello.base.r0.abc",
      "--init",
      "--cpus",
      "1",
      "--memory",
      "1024m",
      "ghcr.io/abliterate/bench-hello-file:1",
      "sleep",
      "infinity",
    ]);
    assert.equal(c[3]![0], "exec");
    assert.match(c[3]!.at(-1)!, /mkdir -p \/logs\/agent \/logs\/verifier && \(command -v tmux/);
    assert.deepEqual(c[4], [
      "exec",
      "-i",
      "-w",
      "/app",
      "-e",
      "A=1",
      name,
      "timeout",
      "-k",
      "5",
      "30",
      "bash",
      "-c",
      "echo hi",
    ]);
    assert.deepEqual(c[7], ["exec", name, "tmux", "capture-pane", "-p"]);
    assert.deepEqual(c[9], ["cp", `${join(task.dir, "tests")}/.`, `${name}:/tests`]);
    assert.deepEqual(c[10], ["cp", `${name}:/logs/verifier`, join(tmp, "v")]);
    assert.deepEqual(c.at(-1), ["rm", "-f", name]);
  });

  it("builds from environment/ without docker_image and honours allow_internet = false", async () => {
    await rm(log, { force: true });
    const dir = join(tmp, "t");
    await mkdir(join(dir, "environment"), { recursive: true });
    const base = await loadTask(join(LOCAL_TASKS_DIR, "hello-file"));
    const config = parseTaskConfig("[environment]\nallow_internet = false\nmemory_mb = 512\n");
    const task: Task = { ...base, id: "offline", dir, config };
    const env = createDockerEnvironment(task, "x", { dockerPath: fake });
    await env.start();
    await env.stop();
    const c = await calls();
    const tag = `abl-task-offline:${base.digest.slice(7, 19)}`;
    assert.deepEqual(c[0], ["build", "-t", tag, join(dir, "environment")]);
    assert.deepEqual(c[1], [
      "run",
      "-d",
      "--name",
      "abl-x",
      "--label",
      "abl.trial=x",
      "--init",
      "--memory",
      "512m",
      "--network",
      "none",
      tag,
      "sleep",
      "infinity",
    ]);
  });

  it("a missing docker binary is an environment error", async () => {
    const task = await loadTask(join(LOCAL_TASKS_DIR, "hello-file"));
    const env = createDockerEnvironment(task, "y", { dockerPath: join(tmp, "no-docker") });
    await assert.rejects(env.start(), /cannot run .*no-docker/);
    await env.stop();
  });
});
