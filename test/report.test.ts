// `abl report` end to end: synthetic records in the bench's folder layout → CLI → report.html,
// rendered in headless Chromium; fails on page errors, console errors, network requests or when
// the page has no SVG plots. Leaves a full-page PNG in the test's temp dir while it runs.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import { startS3 } from "@abl/e2e/servers";
import { generateSyntheticRecords, syntheticSweep } from "@abl/stats";
import { createS3Store } from "@abl/store";
import { chromium } from "playwright-core";

const root = new URL("..", import.meta.url).pathname;
const CHROMIUM = "/usr/bin/chromium";
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "abl-report-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function runAbl(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(root, "cli/src/main.ts"), ...args],
      {
        cwd: root,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

test("abl report renders a self-contained report.html that Chromium shows without errors", async () => {
  const demo = syntheticSweep(11, 30, 4);
  const records = join(dir, "records");
  // Bench layout: one result.json per trial; half of the variants as a JSONL file instead.
  const jsonl: string[] = [];
  for (const r of demo.records) {
    if (r.variant === "abl-L20" || r.variant === "abl-L24") {
      jsonl.push(JSON.stringify(r));
      continue;
    }
    const d = join(records, "trials", r.variant, r.taskId, String(r.replica));
    await mkdir(d, { recursive: true });
    await writeFile(
      join(d, "result.json"),
      JSON.stringify({ ...r, trialId: `${r.variant}-${r.taskId}-${r.replica}` }),
    );
  }
  await writeFile(join(records, "more.jsonl"), `${jsonl.join("\n")}\n`);
  await writeFile(join(dir, "variants.json"), JSON.stringify(demo.variants));
  await writeFile(join(dir, "auc.json"), JSON.stringify(demo.layerAuc));
  const out = join(dir, "out");
  const res = await runAbl([
    "report",
    "--records",
    records,
    "--out",
    out,
    "--variants",
    join(dir, "variants.json"),
    "--auc",
    join(dir, "auc.json"),
    "--bootstrap",
    "300",
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /abl-L12 vs base: .*Fisher's exact test two-sided n=\d+ p=/);
  for (const f of ["master_summary.csv", "summary.json", "report.html"])
    assert.ok((await stat(join(out, f))).size > 0);
  const summary = JSON.parse(await readFile(join(out, "summary.json"), "utf8"));
  assert.equal(summary.records, demo.records.length);
  assert.equal(summary.variants.length, 7);
  const html = await readFile(join(out, "report.html"), "utf8");
  assert.doesNotMatch(html, /<script|<link|@import|url\(/i, "report.html must not load anything");

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    const requests: string[] = [];
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    page.on("request", (r) => requests.push(r.url()));
    const url = pathToFileURL(join(out, "report.html")).href;
    await page.goto(url, { waitUntil: "load" });
    const plots = await page.locator("svg").count();
    const sizes = await page.$$eval("svg", (els) =>
      els.map((e) => e.getBoundingClientRect().height),
    );
    const png = join(dir, "report.png");
    await page.screenshot({ path: png, fullPage: true });
    assert.deepEqual(problems, []);
    assert.deepEqual(
      requests.filter((u) => u !== url),
      [],
      "the page must not request anything",
    );
    // Accuracy bars, heat map, two UpSet plots, one sweep (layer, with AUC beside it).
    assert.ok(plots >= 5, `expected at least 5 SVG plots, found ${plots}`);
    assert.ok(
      sizes.every((h) => h > 50),
      `every plot has height: ${sizes.join(", ")}`,
    );
    assert.ok((await stat(png)).size > 10_000);
  } finally {
    await browser.close();
  }
});

test("abl report rejects bad usage and bad records with clear messages", async () => {
  const noOut = await runAbl(["report", "--synthetic"]);
  assert.equal(noOut.code, 2);
  assert.match(noOut.stderr, /--out is required/);
  const bad = join(dir, "bad.jsonl");
  await writeFile(
    bad,
    '{"variant":"v","taskId":"t","replica":0,"reward":1,"outcome":"passed","turns":1,"parseErrors":0}\n',
  );
  const res = await runAbl(["report", "--records", bad, "--out", join(dir, "bad-out")]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /bad\.jsonl:1: missing field "noCmdTurns"/);
});

test("abl report reads result.json objects and JSONL from an s3:// prefix (MinIO)", async () => {
  const s3 = await startS3();
  try {
    const store = createS3Store({
      endpoint: s3.endpoint,
      accessKey: s3.accessKey,
      secretKey: s3.secretKey,
      bucket: "abl",
      prefix: "sweeps/s1",
    });
    const { records } = generateSyntheticRecords({
      variants: [
        { name: "base", skill: -1 },
        { name: "abl", skill: 0 },
      ],
      tasks: 6,
      replicas: 2,
      seed: 3,
    });
    const enc = new TextEncoder();
    for (const r of records.filter((x) => x.variant === "base")) {
      await store.put(
        `trials/${r.variant}-${r.taskId}-${r.replica}/result.json`,
        enc.encode(JSON.stringify(r)),
      );
    }
    const rest = records.filter((x) => x.variant !== "base").map((x) => JSON.stringify(x));
    await store.put("extra/abl.jsonl", enc.encode(`${rest.join("\n")}\n`));
    await store.put("trials/notes.txt", enc.encode("not a record"));
    const out = join(dir, "s3-out");
    const res = await runAbl(
      ["report", "--records", "s3://abl/sweeps/s1", "--out", out, "--bootstrap", "200"],
      {
        ABL_S3_ENDPOINT: s3.endpoint,
        ABL_S3_ACCESS_KEY: s3.accessKey,
        ABL_S3_SECRET_KEY: s3.secretKey,
      },
    );
    assert.equal(res.code, 0, res.stderr);
    const summary = JSON.parse(await readFile(join(out, "summary.json"), "utf8"));
    assert.equal(summary.records, records.length);
    assert.deepEqual(summary.variants, ["abl", "base"]);
    assert.equal(summary.baseline, "base");
    const missing = await runAbl(["report", "--records", "s3://abl/sweeps/s1", "--out", out]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /need ABL_S3_ENDPOINT/);
  } finally {
    await s3.stop();
  }
});
