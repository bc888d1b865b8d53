#!/usr/bin/env node
// Entry point for the `abl` command: runs the TypeScript sources through the tsx loader.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const r = spawnSync(process.execPath, ["--import", "tsx", main, ...process.argv.slice(2)], {
  stdio: "inherit",
});
process.exit(r.status ?? (r.signal ? 128 + 1 : 1));
