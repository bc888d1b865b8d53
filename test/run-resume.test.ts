/**
 * `abl run` as a user runs it (a child process), on the real SmolLM2-135M-Instruct:
 *
 * - killed with SIGKILL in the middle of patching, then in the middle of the bench, then rerun to
 *   the end: exactly one record per trial, and the same report numbers as an uninterrupted run;
 * - the report's numbers are the trial records' and the refusal evaluation's (computed, not typed);
 * - a spec with mistakes fails before any work starts, naming each problem.
 *
 * The bench uses the oracle agent so outcomes are deterministic; the refusal evaluation runs
 * against the built-in server with greedy decoding.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ABL = join(ROOT, "cli", "bin", "abl.mjs");
let work: string;
let gguf: string;

async function findGguf(): Promise<string> {
  const env = process.env.ABL_SMOLLM2_GGUF;
  if (env && (await stat(env).catch(() => undefined))) return env;
  const dir = join(process.env.ABL_CACHE_DIR ?? join(homedir(), ".cache", "abl"), "smollm2");
  const f = (await readdir(dir).catch(() => [] as string[])).find((n) => n.endsWith(".gguf"));
  if (!f)
    throw new Error(
      `SmolLM2 GGUF not found: set ABL_SMOLLM2_GGUF or run scripts/install-deps.sh (looked in ${dir})`,
    );
  return join(dir, f);
}

before(async () => {
  gguf = await findGguf();
  const { mkdtemp } = await import("node:fs/promises");
  work = await mkdtemp(join(tmpdir(), "abl-resume-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

const spec = (model: string) => `name: resume
model:
  source: ${JSON.stringify(model)}
contrast:
  preset: agent-shell
  limit: 12
capture:
  batch_size: 12
variants:
  - name: base
    kind: base
  - name: abliterated
    kind: abliterated
    layer: selected
refusal:
  max_tokens: 100
  kl_tokens: 4
  prompts: 4
  markers: ["I'm sorry", "I cannot", "I can't", "as an AI", "I don't have access"]
bench:
  dataset: builtin
  tasks: [hello-file, repair-csv, merge-json-config]
  replicas: 2
  agent: oracle
  concurrency: 2
report:
  bootstrap: 500
`;

interface Run {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

function startRun(specFile: string, out: string): Run {
  const child = spawn(process.execPath, [ABL, "run", specFile, "--out", out], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env },
  });
  let text = "";
  child.stdout!.on("data", (d) => {
    text += d;
  });
  child.stderr!.on("data", (d) => {
    text += d;
  });
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => text, exit };
}

/** Resolves when `pattern` appears in the run's output; rejects if the run exits first. */
async function waitForOutput(run: Run, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void run.exit.then(() => {
    exited = true;
  });
  while (!pattern.test(run.output())) {
    if (exited) throw new Error(`run exited before ${pattern}:\n${run.output().slice(-3000)}`);
    if (Date.now() > deadline)
      throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${run.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls the store until at least `n` trial results exist; returns how many there were. */
async function waitForTrials(out: string, n: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let count = 0;
    const root = join(out, "store", "trials");
    for (const bench of await readdir(root).catch(() => [] as string[])) {
      for (const trial of await readdir(join(root, bench)).catch(() => [] as string[])) {
        if (await stat(join(root, bench, trial, "result.json")).catch(() => undefined)) count++;
      }
    }
    if (count >= n) return count;
    if (Date.now() > deadline)
      throw new Error(`fewer than ${n} trials finished within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function runToEnd(specFile: string, out: string): Promise<string> {
  const run = startRun(specFile, out);
  const code = await run.exit;
  assert.equal(code, 0, `abl run failed:\n${run.output().slice(-4000)}`);
  return run.output();
}

interface Summary {
  summaries: { variant: string; trials: number; passes: number; accuracy: number | null }[];
  comparisons: unknown[];
  rows: unknown[];
  refusal: Record<
    string,
    { refusal: Record<string, { count: number; n: number; rate: number }>; kl?: { mean: number } }
  >;
  directions: { selection: { layer: number } };
}

async function readSummary(out: string): Promise<Summary> {
  return JSON.parse(await readFile(join(out, "summary.json"), "utf8")) as Summary;
}

async function readTrials(
  out: string,
): Promise<
  { variant: string; taskId: string; replica: number; outcome: string; reward: number | null }[]
> {
  const text = await readFile(join(out, "trials.jsonl"), "utf8");
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));
}

test("killed during patching and during the bench, a rerun finishes with one record per trial and the same report", async () => {
  const specFile = join(work, "resume.yaml");
  await writeFile(specFile, spec(gguf));
  const out = join(work, "interrupted");

  const first = startRun(specFile, out);
  await waitForOutput(first, /^patch .*\[/m, 600_000);
  first.child.kill("SIGKILL");
  await first.exit;
  const models = await readdir(join(out, "store", "models"));
  let published = 0;
  for (const m of models)
    if (await stat(join(out, "store", "models", m, "manifest.json")).catch(() => undefined))
      published++;
  assert.equal(
    published,
    1,
    "only the imported base model is published; the killed patch left no manifest",
  );

  const second = startRun(specFile, out);
  await waitForOutput(second, /^\[7\] bench/m, 600_000);
  const finishedTrials = await waitForTrials(out, 2, 600_000);
  second.child.kill("SIGKILL");
  await second.exit;
  assert.ok(
    finishedTrials < 12,
    `killed in the middle of the bench (${finishedTrials} of 12 trials done)`,
  );

  const log = await runToEnd(specFile, out);
  assert.match(log, /import model \(cached/);
  assert.match(log, /patch abliterated \(cached/);
  assert.match(log, /already done/);

  const trials = await readTrials(out);
  assert.equal(trials.length, 12, "3 tasks × 2 variants × 2 replicas");
  const ids = new Set(trials.map((t) => `${t.variant}/${t.taskId}/${t.replica}`));
  assert.equal(ids.size, 12, "exactly one record per trial");

  const clean = join(work, "uninterrupted");
  await runToEnd(specFile, clean);
  const a = await readSummary(out);
  const b = await readSummary(clean);
  assert.deepEqual(a.summaries, b.summaries);
  assert.deepEqual(a.comparisons, b.comparisons);
  assert.deepEqual(a.rows, b.rows);
  assert.deepEqual(a.refusal, b.refusal);
  assert.equal(a.directions.selection.layer, b.directions.selection.layer);

  // The report's numbers are the records' and the evaluation's.
  for (const s of a.summaries) {
    const mine = trials.filter((t) => t.variant === s.variant);
    assert.equal(s.trials, mine.length);
    assert.equal(s.passes, mine.filter((t) => t.outcome === "passed").length);
  }
  const evals = join(out, "store", "evals");
  for (const key of (await readdir(evals)).filter((k) => /^[0-9a-f]{64}$/.test(k))) {
    const { meta: m } = JSON.parse(await readFile(join(evals, key, "manifest.json"), "utf8")) as {
      meta: {
        params: { variant: string };
        result: { refusal: Record<string, { count: number; n: number }> };
      };
    };
    assert.deepEqual(a.refusal[m.params.variant]?.refusal, m.result.refusal);
    const samples = JSON.parse(await readFile(join(evals, key, "samples.json"), "utf8")) as {
      verdicts: Record<string, string>;
    }[];
    const refused = samples.filter((x) => x.verdicts.markers === "refusal").length;
    assert.equal(
      m.result.refusal.markers?.count,
      refused,
      "the refusal count is the judged samples'",
    );
  }
  const html = await readFile(join(out, "report.html"), "utf8");
  assert.match(html, /Refusal \/ capability denial/);
  assert.match(html, /<svg/);
});

test("a spec with mistakes fails before any work starts, naming each problem", async () => {
  const bad = join(work, "bad.yaml");
  await writeFile(
    bad,
    `model:
  source: ${JSON.stringify(gguf)}
variants:
  - name: a
    kind: abliterated
    layer: 99
bench:
  dataset: builtin
  tasks: [no-such-task]
`,
  );
  const out = join(work, "bad-out");
  const run = startRun(bad, out);
  assert.equal(await run.exit, 1);
  assert.match(run.output(), /variants\[0\]\.layer: layer 99 is beyond the model's 30 layers/);
  assert.match(run.output(), /bench\.tasks: "no-such-task" is not in/);
  assert.equal(await stat(join(out, "store")).catch(() => undefined), undefined, "no work started");

  const unknown = join(work, "unknown.yaml");
  await writeFile(unknown, `model:\n  source: x\nbench:\n  replica: 3\n`);
  const r2 = startRun(unknown, join(work, "unknown-out"));
  assert.equal(await r2.exit, 1);
  assert.match(r2.output(), /bench\.replica \(line 4\): unknown key "replica"/);

  const missing = join(work, "missing.yaml");
  await writeFile(
    missing,
    `model:\n  source: ${JSON.stringify(gguf)}\nbench:\n  dataset: /no/such/dataset\n`,
  );
  const r3 = startRun(missing, join(work, "missing-out"));
  assert.equal(await r3.exit, 1);
  assert.match(r3.output(), /bench\.dataset: \/no\/such\/dataset does not exist/);
});
