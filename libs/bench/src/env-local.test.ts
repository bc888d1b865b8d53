import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createLocalEnvironment, sweepScratch } from "./env-local.ts";
import type { Environment } from "./environment.ts";
import { loadTask, type Task } from "./task.ts";
import { TmuxSession } from "./tmux-session.ts";

let tmp: string;
let task: Task;
let env: Environment;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "abl-envl-"));
  const dir = join(tmp, "t");
  const files: Record<string, string> = {
    "task.toml": 'version = "1.0"\n[environment]\ncpus = 1\n[environment.env]\nTASK_VAR = "tv"\n',
    "instruction.md": "x\n",
    "tests/test.sh": "echo secret-test\n",
    "solution/solve.sh": "echo secret-solution\n",
    "environment/Dockerfile":
      "FROM debian:12\nWORKDIR /app\nCOPY data/ /app/\nCOPY one.txt /srv2/\nENV GREETING=hello\n# local: skip\nRUN apt-get install -y nothing\nRUN echo $GREETING > /app/ran && \\\n  echo more >> /app/ran\n",
    "environment/data/a.txt": "A\n",
    "environment/one.txt": "ONE\n",
  };
  for (const [p, text] of Object.entries(files)) {
    await mkdir(join(dir, p, ".."), { recursive: true });
    await writeFile(join(dir, p), text);
  }
  task = await loadTask(dir);
  env = createLocalEnvironment(task, "trial-1");
  await env.start();
});

after(async () => {
  await env?.stop();
  await rm(tmp, { recursive: true, force: true });
});

describe("local sandbox", () => {
  it("places task files where the image would have them and replays RUN/ENV", async () => {
    const r = await env.exec("pwd; cat a.txt ran /srv2/one.txt; echo $GREETING $TASK_VAR");
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, "/app\nA\nhello\nmore\nONE\nhello tv\n");
  });

  it("has no network, a read-only root, and hides the host project and the task's tests", async () => {
    const r = await env.exec(
      "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; touch /usr/x 2>&1; touch /x 2>&1; ls /work 2>&1; grep -rl secret- /app /root /srv2 /tmp /logs /tests /solution 2>/dev/null; echo done",
    );
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines[0], "lo");
    assert.match(r.stdout, /\/usr\/x': Read-only file system/);
    assert.match(r.stdout, /\/x': Read-only file system/);
    assert.match(r.stdout, /ls: cannot access '\/work'/);
    assert.equal(lines.at(-1), "done");
    assert.ok(!r.stdout.includes("secret-"));
  });

  it("reports exit codes and stderr, and kills a command at its timeout", async () => {
    const r = await env.exec("echo err >&2; exit 3");
    assert.equal(r.exitCode, 3);
    assert.equal(r.stderr, "err\n");
    const t = await env.exec("sleep 30", { timeoutSec: 1 });
    assert.equal(t.timedOut, true);
  });

  it("uploads and downloads files and folders", async () => {
    const src = join(tmp, "up");
    await mkdir(join(src, "sub"), { recursive: true });
    await writeFile(join(src, "sub", "f.txt"), "payload");
    await env.upload(src, "/tests");
    assert.equal((await env.exec("cat /tests/sub/f.txt")).stdout, "payload");
    await env.exec("mkdir -p /logs/verifier && echo 0.5 > /logs/verifier/reward.txt");
    await env.download("/logs/verifier", join(tmp, "down"));
    assert.equal(await readFile(join(tmp, "down", "reward.txt"), "utf8"), "0.5\n");
  });

  it("drives a tmux session: chunked keystrokes over tmux's limit and background processes", async () => {
    const s = new TmuxSession(env);
    await s.start();
    assert.ok(await s.alive());
    const info = await env.tmux([
      "display",
      "-p",
      "-t",
      "terminus-2",
      "#{history_limit} #{pane_width}x#{pane_height} #{pane_current_path}",
    ]);
    assert.equal(info.stdout.trim(), "10000000 160x40 /app");
    const big = "x".repeat(40_000);
    await s.sendKeys(`cat > big.txt <<'EOF'\n${big}\nEOF\n`);
    await s.sendKeys("(sleep 300 &) ; echo started-bg\n");
    let screen = "";
    for (let i = 0; i < 100 && !screen.includes("started-bg\n"); i++) {
      await sleep(50);
      screen = await s.capture(false);
    }
    assert.match(screen, /started-bg/);
    const size = await env.exec("stat -c %s big.txt");
    assert.equal(size.stdout.trim(), String(40_001));
    const ps = await env.exec("pgrep -f 'sleep 300' | wc -l");
    assert.equal(ps.stdout.trim(), "1");
    await s.sendKeys("C-c");
  });

  it("stop removes the scratch folder and the processes", async () => {
    const scratches = async () =>
      (await readdir(tmpdir())).filter((n) => n.startsWith("abl-sb-")).sort();
    const before = await scratches();
    const e2 = createLocalEnvironment(task, "trial-2");
    await e2.start();
    const during = await scratches();
    const mine = during.filter((n) => !before.includes(n));
    assert.equal(mine.length, 1);
    const r = await e2.exec("echo $$");
    assert.equal(r.exitCode, 0);
    await e2.stop();
    await e2.stop();
    await assert.rejects(e2.exec("true"), /not running/);
    assert.ok(!(await scratches()).includes(mine[0]!));
  });
});

test("scratch folders of killed runs are swept; live ones and other names are kept", async () => {
  const root = await mkdtemp(join(tmpdir(), "abl-sweep-"));
  try {
    // A pid that surely is gone: a child that has exited.
    const { spawnSync } = await import("node:child_process");
    const dead = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim();
    for (const name of [
      `abl-sb-${dead}-aaaaaa`,
      `abl-sb-${process.ppid}-bbbbbb`,
      `abl-sb-${process.pid}-cccccc`,
      "abl-sb-notapid",
      "other",
    ])
      await mkdir(join(root, name, "fs"), { recursive: true });
    assert.equal(await sweepScratch(root), 1);
    assert.deepEqual(
      (await readdir(root)).sort(),
      [
        `abl-sb-${process.pid}-cccccc`,
        `abl-sb-${process.ppid}-bbbbbb`,
        "abl-sb-notapid",
        "other",
      ].sort(),
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
