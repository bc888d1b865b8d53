#!/usr/bin/env node
// Fails when the committed generated code in libs/rpc/src/gen differs from what `buf generate`
// produces now (CONVENTIONS: generated code is committed and CI fails if regenerating changes it),
// and when `buf lint` or `buf format` find problems in proto/.
// It regenerates into a temporary folder using proto/buf.gen.yaml with only `out` redirected, so
// the check always uses the same plugin and options as `npm run proto:gen`.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { parse } from "yaml";

const root = resolve(new URL("..", import.meta.url).pathname);
const protoDir = join(root, "proto");
const buf = join(root, "node_modules", ".bin", "buf");

function run(args) {
  const r = spawnSync(buf, args, { cwd: protoDir, encoding: "utf8" });
  if (r.error) throw r.error;
  return r;
}

function listFiles(dir, base = dir, out = []) {
  let names;
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) listFiles(p, base, out);
    else out.push(relative(base, p));
  }
  return out;
}

const problems = [];

const lint = run(["lint"]);
if (lint.status !== 0) problems.push(`buf lint failed:\n${lint.stdout}${lint.stderr}`);
const format = run(["format", "--diff", "--exit-code"]);
if (format.status !== 0)
  problems.push(`buf format would change proto files:\n${format.stdout}${format.stderr}`);

const template = parse(readFileSync(join(protoDir, "buf.gen.yaml"), "utf8"));
const tmp = mkdtempSync(join(tmpdir(), "abl-proto-check-"));
try {
  const committedDirs = new Map();
  template.plugins = template.plugins.map((plugin, i) => {
    const out = join(tmp, String(i));
    committedDirs.set(out, resolve(protoDir, plugin.out));
    return { ...plugin, out };
  });
  const gen = run(["generate", "--template", JSON.stringify(template)]);
  if (gen.status !== 0) {
    problems.push(`buf generate failed:\n${gen.stdout}${gen.stderr}`);
  } else {
    for (const [fresh, committed] of committedDirs) {
      const freshFiles = new Set(listFiles(fresh));
      const committedFiles = new Set(listFiles(committed));
      const shown = relative(root, committed);
      for (const f of freshFiles) {
        if (!committedFiles.has(f)) problems.push(`${shown}/${f}: missing (run npm run proto:gen)`);
        else if (!readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f)))) {
          problems.push(`${shown}/${f}: differs from regenerated code (run npm run proto:gen)`);
        }
      }
      for (const f of committedFiles) {
        if (!freshFiles.has(f))
          problems.push(`${shown}/${f}: not generated from any proto (stale)`);
      }
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

if (problems.length > 0) {
  for (const p of problems) console.error(`proto-check: ${p}`);
  process.exit(1);
}
console.log("proto-check: generated code, lint and format are up to date");
