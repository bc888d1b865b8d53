#!/usr/bin/env node
// Runs every workspace's unit tests (`**/src/**/*.test.ts`) and the end-to-end tests in `test/`
// with node:test through the tsx loader. `--unit` or `--e2e` narrows the set; any other argument
// is a path filter (substring) on the test files.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const args = process.argv.slice(2);
const unitOnly = args.includes("--unit");
const e2eOnly = args.includes("--e2e");
const filters = args.filter((a) => !a.startsWith("--"));

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith(".test.ts")) out.push(relative(root, p));
  }
  return out;
}

const unit = [];
for (const top of ["libs", "services", "cli"]) walk(join(root, top), unit);
const e2e = walk(join(root, "test"), []);
let files = unitOnly ? unit : e2eOnly ? e2e : [...unit, ...e2e];
if (filters.length > 0) files = files.filter((f) => filters.some((x) => f.includes(x)));
files.sort();
if (files.length === 0) {
  console.error("no test files matched");
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", "--test-reporter=spec", ...files],
  { cwd: root, stdio: "inherit" },
);
process.exit(r.status ?? 1);
