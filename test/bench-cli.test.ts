import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type FakeModel, startFakeModel } from "@abl/bench";

const ROOT = new URL("..", import.meta.url).pathname;

function abl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["--import", "tsx", join(ROOT, "cli/src/main.ts"), ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    p.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    p.on("error", reject);
    p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

let tmp: string;
let fake: FakeModel;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "abl-bcli-"));
  const step = (keys: string[], done: boolean) => ({
    content: JSON.stringify({
      analysis: "a",
      plan: "p",
      commands: keys.map((k) => ({ keystrokes: k, duration: 0.3 })),
      task_complete: done,
    }),
  });
  // Every conversation: write the file, then confirm completion twice.
  fake = await startFakeModel({
    respond: (req) => {
      const n = req.messages.filter((m) => m.role === "assistant").length;
      return n === 0
        ? step(["printf 'Hello, world!\\n' > /app/hello.txt\n"], false)
        : step([], true);
    },
  });
});
after(async () => {
  await fake.close();
  await rm(tmp, { recursive: true, force: true });
});

describe("abl bench run", () => {
  it("runs the Terminus agent against an endpoint and writes records, then resumes", async () => {
    const args = [
      "bench",
      "run",
      "--endpoint",
      fake.endpoint,
      "--model",
      "fake",
      "--tasks",
      "hello-file",
      "--replicas",
      "2",
      "--out",
      join(tmp, "out"),
      "--run-id",
      "cli1",
    ];
    const r = await abl(args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /default\t2\t2\t2\t1\.000\tpassed=2/);
    assert.match(r.stderr, /\[2\/2\]/);
    const trials = await readdir(join(tmp, "out", "runs", "cli1", "trials"));
    assert.equal(trials.length, 2);
    const result = JSON.parse(
      await readFile(join(tmp, "out", "runs", "cli1", "trials", trials[0]!, "result.json"), "utf8"),
    );
    assert.equal(result.model.name, "fake");
    assert.equal(result.model.sampling.temperature, 0.7);
    assert.equal(result.agent.version, "terminus-2@2.0.0-ts");
    const again = await abl(args);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resuming: 2 of 2 trials already finished/);
  });

  it("rejects bad usage with exit code 2 and a message naming the option", async () => {
    const r = await abl(["bench", "run", "--agent", "terminus-json"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /needs --endpoint and --model/);
  });
});
