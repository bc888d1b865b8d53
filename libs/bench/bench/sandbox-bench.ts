/**
 * Measures the local sandbox's overheads, side by side with the baseline of running the same
 * thing directly on the host (no isolation): start+stop of a sandbox vs spawning a shell, one
 * `exec` round trip vs `bash -c`, and one oracle trial end to end. Prints medians and ratios.
 *
 *   npm run bench:sandbox [-- --rounds N]
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  createLocalEnvironment,
  createOracleAgent,
  LOCAL_TASKS_DIR,
  loadTask,
  runTrial,
} from "@abl/bench";
import { createLocalStore } from "@abl/store";

const { values } = parseArgs({
  options: { rounds: { type: "string", default: "10" } },
  strict: true,
});
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1)
  throw new RangeError(`--rounds must be ≥ 1, got ${values.rounds}`);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const bash = (cmd: string) =>
  new Promise<void>((resolve, reject) =>
    execFile("bash", ["-c", cmd], (e) => (e ? reject(e) : resolve())),
  );
async function time(fn: () => Promise<void>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

const task = await loadTask(join(LOCAL_TASKS_DIR, "hello-file"));
const startStop: number[] = [];
const hostShell: number[] = [];
const execRt: number[] = [];
const hostExec: number[] = [];
for (let i = 0; i < rounds; i++) {
  const env = createLocalEnvironment(task, `bench-${i}`);
  startStop.push(
    await time(async () => {
      await env.start();
      await env.stop();
    }),
  );
  hostShell.push(await time(() => bash("true")));
}
const env = createLocalEnvironment(task, "bench-exec");
await env.start();
try {
  for (let i = 0; i < rounds; i++) {
    execRt.push(await time(async () => void (await env.exec("echo hi"))));
    hostExec.push(await time(() => bash("echo hi >/dev/null")));
  }
} finally {
  await env.stop();
}
const dir = await mkdtemp(join(tmpdir(), "abl-sbench-"));
const trial: number[] = [];
try {
  const store = createLocalStore({ root: dir, fsync: false });
  for (let i = 0; i < Math.min(rounds, 5); i++) {
    trial.push(
      await time(async () => {
        const r = await runTrial(
          { trialId: `t${i}`, variant: "v", replica: i, task, agent: createOracleAgent() },
          { envFactory: createLocalEnvironment, store, prefix: "b" },
        );
        if (r.outcome !== "passed") throw new Error(`oracle trial ${r.outcome}: ${r.detail}`);
      }),
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
const row = (name: string, ms: number, base?: number) =>
  console.log(
    `${name.padEnd(34)} ${ms.toFixed(1).padStart(8)} ms${base ? `   ×${(ms / base).toFixed(1)} vs host` : ""}`,
  );
console.log(
  `local sandbox overheads, median of ${rounds} (host load matters: run on a quiet machine)`,
);
row("host: spawn bash (baseline)", median(hostShell));
row("sandbox start + stop", median(startStop), median(hostShell));
row("host: bash -c echo (baseline)", median(hostExec));
row("sandbox exec echo", median(execRt), median(hostExec));
row("oracle trial hello-file (end to end)", median(trial));
