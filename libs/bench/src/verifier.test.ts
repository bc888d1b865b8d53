import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLocalEnvironment } from "./env-local.ts";
import type { Environment } from "./environment.ts";
import { loadTask, type Task } from "./task.ts";
import { rewardFromJson, runVerifier } from "./verifier.ts";

let tmp: string;
let env: Environment;

async function makeTask(name: string, testSh: string, verifierTimeout = 30): Promise<Task> {
  const dir = join(tmp, name);
  const files: Record<string, string> = {
    "task.toml": `version = "1.0"\n[verifier]\ntimeout_sec = ${verifierTimeout}\n`,
    "instruction.md": "x\n",
    "tests/test.sh": testSh,
    "solution/solve.sh": "true\n",
  };
  for (const [p, text] of Object.entries(files)) {
    await mkdir(join(dir, p, ".."), { recursive: true });
    await writeFile(join(dir, p), text);
  }
  return loadTask(dir);
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "abl-ver-t-"));
  env = createLocalEnvironment(await makeTask("base", "true\n"), "ver");
  await env.start();
});
after(async () => {
  await env?.stop();
  await rm(tmp, { recursive: true, force: true });
});

describe("verifier", () => {
  it("reward.json wins over reward.txt; stdout, stderr and ctrf.json are kept", async () => {
    const t = await makeTask(
      "json",
      'echo out; echo err >&2; echo 1 > /logs/verifier/reward.txt; echo \'{"reward": 0.5, "style": 1}\' > /logs/verifier/reward.json; echo "{}" > /logs/verifier/ctrf.json\n',
    );
    const v = await runVerifier(env, t);
    assert.equal(v.outcome, "failed");
    assert.equal(v.reward, 0.5);
    assert.deepEqual(v.rewards, { reward: 0.5, style: 1 });
    const dec = new TextDecoder();
    assert.equal(dec.decode(v.files["test-stdout.txt"]), "out\n");
    assert.equal(dec.decode(v.files["test-stderr.txt"]), "err\n");
    assert.ok(v.files["ctrf.json"]);
  });

  it("runs from the image WORKDIR and wipes what was in /logs/verifier and /tests", async () => {
    await env.exec("echo 1 > /logs/verifier/reward.txt; touch /tests/planted");
    const t = await makeTask(
      "wd",
      '[ "$PWD" = /app ] && [ ! -e /tests/planted ] && echo 1 > /logs/verifier/reward.txt\n',
    );
    const v = await runVerifier(env, t);
    assert.equal(v.outcome, "passed", v.detail);
  });

  it("a missing or unreadable reward is reward_missing, scored 0", async () => {
    const none = await runVerifier(env, await makeTask("none", "exit 3\n"));
    assert.equal(none.outcome, "reward_missing");
    assert.equal(none.reward, 0);
    assert.match(none.detail, /exit 3\) wrote neither reward.json nor reward.txt/);
    const big = await runVerifier(
      env,
      await makeTask("big", "echo 7 > /logs/verifier/reward.txt\n"),
    );
    assert.equal(big.outcome, "reward_missing");
    assert.match(big.detail, /reward 7 is outside \[0, 1\]/);
    const text = await runVerifier(
      env,
      await makeTask("txt", "echo yes > /logs/verifier/reward.txt\n"),
    );
    assert.match(text.detail, /reward.txt holds "yes", not a number/);
  });

  it("kills test.sh at the verifier timeout", async () => {
    const v = await runVerifier(
      env,
      await makeTask("slow", "sleep 60; echo 1 > /logs/verifier/reward.txt\n", 1),
    );
    assert.equal(v.outcome, "verifier_timeout");
    assert.equal(v.reward, 0);
    assert.match(v.detail, /verifier timeout of 1 s/);
  });

  it("reads reward.json forms", () => {
    assert.equal(rewardFromJson("0.25").reward, 0.25);
    assert.equal(rewardFromJson('{"score": 1}').reward, 1);
    assert.throws(() => rewardFromJson('{"a": 1, "b": 0}'), /2 keys and no "reward" key/);
    assert.throws(() => rewardFromJson('{"reward": "1"}'), /reward is not a number/);
  });
});
