import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { commands } from "./index.ts";

const ABL = fileURLToPath(new URL("../../bin/abl.mjs", import.meta.url));

test("every entry loads the command it names, with the same summary", async () => {
  for (const entry of commands) {
    const c = await entry.load();
    assert.deepEqual(c.name, entry.name, `entry ${entry.name.join(" ")}`);
    assert.equal(c.summary, entry.summary, `summary of ${entry.name.join(" ")}`);
    assert.match(c.usage, /^usage: abl /, `usage of ${entry.name.join(" ")}`);
  }
});

test("abl --help lists every command; unknown commands and options are usage errors", () => {
  const help = spawnSync(process.execPath, [ABL, "--help"], { encoding: "utf8" });
  assert.equal(help.status, 0);
  for (const e of commands)
    assert.ok(help.stdout.includes(e.name.join(" ")), `--help lists ${e.name.join(" ")}`);
  const unknown = spawnSync(process.execPath, [ABL, "frobnicate"], { encoding: "utf8" });
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
  const badOption = spawnSync(process.execPath, [ABL, "run", "--bogus"], { encoding: "utf8" });
  assert.equal(badOption.status, 2);
  assert.match(badOption.stderr, /Unknown option '--bogus'/);
  assert.match(badOption.stderr, /usage: abl run SPEC\.yaml/);
});
