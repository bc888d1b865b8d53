/**
 * `abl report`: statistics and the HTML report from trial records (a folder of the bench's
 * `result.json` files and/or `.jsonl` files, one JSONL file, or an s3:// prefix), or from a
 * synthetic demo sweep.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import {
  ALTERNATIVES,
  type Alternative,
  buildReport,
  type LayerAuc,
  parseTrialJsonl,
  parseTrialRecord,
  type ReportData,
  syntheticSweep,
  type TrialRecord,
  type VariantInfo,
  writeReport,
} from "@abl/stats";
import { openStore, s3FromEnv } from "@abl/store";
import { type Command, UsageError } from "../command.ts";

/** A result.json is one small record; anything bigger is not one (guards against stray files). */
const MAX_RESULT_JSON_BYTES = 1 << 20;
/** A JSONL file of records: ~300 bytes a record, so 256 MiB is ~1M trials; read whole. */
const MAX_JSONL_BYTES = 256 << 20;

const USAGE = `usage: abl report (--records <dir|file.jsonl|s3://bucket/prefix> | --synthetic) --out DIR [options]

Reads trial records (the bench's result.json files, found recursively, and/or JSON Lines files)
and writes DIR/master_summary.csv, DIR/summary.json and a self-contained DIR/report.html.

options:
  --records SRC          folder, .jsonl file or s3://bucket/prefix (S3: ABL_S3_ENDPOINT,
                         ABL_S3_ACCESS_KEY, ABL_S3_SECRET_KEY; AWS_* names also work)
  --synthetic            use a generated demo sweep (base + 6 layers, 40 tasks × 5 replicas)
  --out DIR              output folder (created)
  --baseline NAME        baseline variant (default: "base"/"baseline" if present, else the first)
  --all-pairs            compare every pair instead of every variant with the baseline
  --alternative SIDE     two-sided (default), greater (treatment better) or less
  --seed N               seed for bootstrap / Monte Carlo permutations (default 1)
  --bootstrap N          bootstrap resamples (default 2000)
  --no-correction        CMH without the continuity correction
  --power-diff LIST      accuracy differences to plan replicas for, e.g. 0.05,0.1
  --variants FILE        JSON: [{"variant": "abl-L12", "params": {"layer": 12}}, ...] (sweeps, order)
  --auc FILE             JSON: [{"layer": 0, "auc": 0.61}, ...] per-layer direction AUC
  --title TEXT           report title`;

async function walk(dir: string, out: string[], signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out, signal);
    else if (e.isFile() && (e.name === "result.json" || e.name.endsWith(".jsonl"))) out.push(p);
  }
}

function parseRecordFile(name: string, text: string): TrialRecord[] {
  if (name.endsWith(".jsonl")) return parseTrialJsonl(text, name);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${name}: not valid JSON`, { cause: err });
  }
  return [parseTrialRecord(value, name)];
}

function checkSize(name: string, size: number): void {
  const limit = name.endsWith(".jsonl") ? MAX_JSONL_BYTES : MAX_RESULT_JSON_BYTES;
  if (size > limit)
    throw new Error(`${name}: ${size} bytes exceeds the ${limit}-byte limit for record files`);
}

async function readLocal(src: string, signal: AbortSignal): Promise<TrialRecord[]> {
  const st = await stat(src).catch((err: unknown) => {
    throw new Error(`--records ${src}: cannot read it`, { cause: err });
  });
  const files: string[] = [];
  if (st.isDirectory()) await walk(src, files, signal);
  else files.push(src);
  files.sort();
  if (files.length === 0) throw new Error(`--records ${src}: no result.json or .jsonl files found`);
  const records: TrialRecord[] = [];
  for (const f of files) {
    signal.throwIfAborted();
    checkSize(f, (await stat(f)).size);
    const name = st.isDirectory() ? relative(src, f) : f;
    records.push(...parseRecordFile(name, await readFile(f, "utf8")));
  }
  return records;
}

/**
 * Reads every `result.json` and `.jsonl` object under an s3:// prefix through the store (reads
 * are checked against the sha256 the store recorded at write time).
 */
async function readS3(
  src: string,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
): Promise<TrialRecord[]> {
  const s3 = s3FromEnv(env);
  if (!s3) {
    throw new UsageError(
      "s3:// records need ABL_S3_ENDPOINT, ABL_S3_ACCESS_KEY and ABL_S3_SECRET_KEY",
    );
  }
  const store = openStore(src, s3);
  const keys: string[] = [];
  for await (const info of store.list("", { signal })) {
    if (
      info.key === "result.json" ||
      info.key.endsWith("/result.json") ||
      info.key.endsWith(".jsonl")
    ) {
      checkSize(info.key, info.size);
      keys.push(info.key);
    }
  }
  keys.sort();
  if (keys.length === 0)
    throw new Error(`--records ${src}: no result.json or .jsonl objects found`);
  const records: TrialRecord[] = [];
  const decoder = new TextDecoder();
  for (const key of keys) {
    signal.throwIfAborted();
    records.push(...parseRecordFile(key, decoder.decode(await store.getBytes(key, { signal }))));
  }
  return records;
}

async function readJsonFile(path: string, flag: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new UsageError(`${flag} ${path}: not a readable JSON file (${(err as Error).message})`);
  }
}

function parseVariants(value: unknown, path: string): VariantInfo[] {
  const list = Array.isArray(value)
    ? value
    : typeof value === "object" && value !== null
      ? Object.entries(value).map(([variant, params]) => ({ variant, params }))
      : null;
  if (!list) throw new UsageError(`--variants ${path}: expected an array or an object`);
  return list.map((v: unknown, i: number) => {
    const o = v as { variant?: unknown; params?: unknown };
    if (typeof o?.variant !== "string" || typeof o.params !== "object" || o.params === null) {
      throw new UsageError(
        `--variants ${path}: entry ${i} needs "variant" (string) and "params" (object)`,
      );
    }
    for (const [k, x] of Object.entries(o.params)) {
      if (typeof x !== "number" && typeof x !== "string") {
        throw new UsageError(
          `--variants ${path}: entry ${i} param "${k}" must be a number or string`,
        );
      }
    }
    return { variant: o.variant, params: o.params as Record<string, number | string> };
  });
}

function parseAuc(value: unknown, path: string): LayerAuc[] {
  if (!Array.isArray(value))
    throw new UsageError(`--auc ${path}: expected an array of {layer, auc}`);
  return value.map((v: unknown, i: number) => {
    const o = v as { layer?: unknown; auc?: unknown };
    if (typeof o?.layer !== "number" || typeof o.auc !== "number" || !(o.auc >= 0 && o.auc <= 1)) {
      throw new UsageError(`--auc ${path}: entry ${i} needs numeric "layer" and "auc" in [0, 1]`);
    }
    return { layer: o.layer, auc: o.auc };
  });
}

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`${flag} must be a non-negative integer, got "${v}"`);
  return n;
}

const pct = (x: number | null) => (x === null ? "–" : `${(x * 100).toFixed(1)}%`);

function printSummary(r: ReportData): void {
  for (const s of r.summaries) {
    const ci = s.ci ? ` [${pct(s.ci.low)}, ${pct(s.ci.high)}]` : "";
    console.log(
      `${s.variant}: accuracy ${pct(s.accuracy)}${ci}, ${s.passes}/${s.trials} passed, ${s.infraExcluded} infra-excluded, ${s.tasks} tasks`,
    );
  }
  for (const c of r.comparisons) {
    if (!c.fisher || !c.cmh || !c.bootstrap) {
      console.log(`${c.treatment} vs ${c.baseline}: ${c.note ?? "not compared"}`);
      continue;
    }
    console.log(
      `${c.treatment} vs ${c.baseline}: Δ ${pct(c.difference)} [${pct(c.bootstrap.ci.low)}, ${pct(c.bootstrap.ci.high)}] on ${c.commonTasks} tasks; ` +
        `${c.fisher.test} ${c.fisher.alternative} n=${c.fisher.n} p=${c.fisher.pValue.toPrecision(3)}; ` +
        `CMH ${c.cmh.alternative} n=${c.cmh.n} p=${c.cmh.pValue.toPrecision(3)} (Holm ${c.cmh.pHolm?.toPrecision(3)})`,
    );
  }
}

function parseReportArgs(args: string[]) {
  return parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      records: { type: "string" },
      synthetic: { type: "boolean" },
      out: { type: "string" },
      baseline: { type: "string" },
      "all-pairs": { type: "boolean" },
      alternative: { type: "string" },
      seed: { type: "string" },
      bootstrap: { type: "string" },
      "no-correction": { type: "boolean" },
      "power-diff": { type: "string" },
      variants: { type: "string" },
      auc: { type: "string" },
      title: { type: "string" },
    },
  });
}

/** `abl report`. */
export const reportCommand: Command = {
  name: ["report"],
  summary: "statistics, plots and an HTML report from trial records",
  usage: USAGE,
  async run(argv, signal) {
    let parsed: ReturnType<typeof parseReportArgs>;
    try {
      parsed = parseReportArgs(argv);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const v = parsed.values;
    if (!v.out) throw new UsageError("--out is required");
    if (!v.records === !v.synthetic)
      throw new UsageError("give exactly one of --records and --synthetic");
    const alternative = (v.alternative ?? "two-sided") as Alternative;
    if (!ALTERNATIVES.includes(alternative)) {
      throw new UsageError(
        `--alternative must be one of ${ALTERNATIVES.join(", ")}, got "${v.alternative}"`,
      );
    }
    const powerDifferences = v["power-diff"]?.split(",").map((x) => {
      const d = Number(x);
      if (!(d > 0 && d <= 1))
        throw new UsageError(`--power-diff values must be in (0, 1], got "${x}"`);
      return d;
    });
    const seed = positiveInt("--seed", v.seed);
    const bootstrap = positiveInt("--bootstrap", v.bootstrap);
    if (bootstrap === 0) throw new UsageError("--bootstrap must be at least 1");
    let records: TrialRecord[];
    let variants: VariantInfo[] | undefined = v.variants
      ? parseVariants(await readJsonFile(v.variants, "--variants"), v.variants)
      : undefined;
    let layerAuc: LayerAuc[] | undefined = v.auc
      ? parseAuc(await readJsonFile(v.auc, "--auc"), v.auc)
      : undefined;
    if (v.synthetic) {
      const demo = syntheticSweep(seed ?? 7);
      records = demo.records;
      variants ??= demo.variants;
      layerAuc ??= demo.layerAuc;
    } else if (v.records!.startsWith("s3://"))
      records = await readS3(v.records!, process.env, signal);
    else records = await readLocal(v.records!, signal);
    const report = buildReport(records, {
      alternative,
      ...(v.baseline === undefined ? {} : { baseline: v.baseline }),
      ...(v["all-pairs"] ? { pairs: "all" as const } : {}),
      ...(seed === undefined ? {} : { seed }),
      ...(bootstrap === undefined ? {} : { bootstrapResamples: bootstrap }),
      ...(v["no-correction"] ? { cmhCorrection: false } : {}),
      ...(powerDifferences === undefined ? {} : { powerDifferences }),
      ...(variants === undefined ? {} : { variants }),
      ...(layerAuc === undefined ? {} : { layerAuc }),
      ...(v.title === undefined ? {} : { title: v.title }),
      signal,
    });
    const written = await writeReport(v.out, report, signal);
    printSummary(report);
    for (const p of written) console.log(`wrote ${p}`);
    return 0;
  },
};
