/**
 * `abl patch`: orthogonalizes a checkpoint against a refusal direction, folder or s3:// prefix in,
 * folder or s3:// prefix out, streamed tensor by tensor.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import {
  type CheckpointFiles,
  loadCheckpoint,
  localCheckpointFiles,
  storeCheckpointFiles,
  WRITER_TARGETS,
  type WriterRule,
  type WriterTarget,
} from "@abl/checkpoint";
import {
  type AbliterationReport,
  buildPlan,
  createLocalOutput,
  createStoreOutput,
  DEFAULT_BUFFER_BYTES,
  DEFAULT_SHARDS_AT_ONCE,
  DEFAULT_SHARED_BUFFER_BYTES,
  type OutputFolder,
  type PatchMethod,
  parseDirectionFile,
  patchCheckpoint,
  type Strength,
} from "@abl/patch";
import { type ObjectStore, openStore, parseStoreUrl, s3FromEnv } from "@abl/store";
import { type Command, UsageError } from "../command.ts";

const USAGE = `usage: abl patch --model <dir|s3://bucket/prefix> --direction <file>[#layer] --out <dir|s3://bucket/prefix> [options]

Removes the refusal direction r from every weight that writes into the residual stream
(W ← W − λ r rᵀW; embeddings E ← E − λ (E r) rᵀ; biases b ← b − λ (b·r) r), streamed tensor by
tensor, and writes an HF folder with the same layout plus abliteration.json.

direction file: safetensors with "direction" [hidden] or "directions" [layers+1, hidden]
(#layer picks one row; without it each layer L uses row L+1 and the embeddings row 0), or raw
little-endian float32 of hidden_size values.

options:
  --targets LIST        comma list of ${WRITER_TARGETS.join(", ")} (default: all)
  --method M            project (default) or norm-preserving (each write vector keeps its norm)
  --scale λ             constant strength (default 1)
  --scales LIST         one λ per layer, comma separated
  --kernel P,W,MAX,MIN  tent kernel: λ = MAX at layer P falling to MIN at distance W, 0 beyond
  --embed-scale λ       λ for the embeddings (default: the largest λ)
  --keep-tied           do not untie tied embeddings (the output head changes too)
  --writer T:AXIS:REGEX explicit residual writer rule (repeatable; AXIS -1 or -2), for
                        architectures without an adapter
  --fsync               fsync output files before publishing (local output)
  --shards-at-once N    shards patched at once, each hashed on its own thread (local output;
                        default ${DEFAULT_SHARDS_AT_ONCE}, with a ${DEFAULT_SHARED_BUFFER_BYTES >> 20} MiB buffer; 1 uses ${DEFAULT_BUFFER_BYTES >> 20} MiB)
  --json                print the result as one JSON object on stdout
S3: ABL_S3_ENDPOINT, ABL_S3_ACCESS_KEY, ABL_S3_SECRET_KEY (AWS_* names also work).`;

function openS3(url: string): { store: ObjectStore; prefix: string } {
  const loc = parseStoreUrl(url);
  if (loc.kind !== "s3") throw new UsageError(`${url} is not an s3:// URL`);
  const creds = s3FromEnv(process.env);
  if (!creds)
    throw new UsageError(`${url} needs ABL_S3_ENDPOINT, ABL_S3_ACCESS_KEY and ABL_S3_SECRET_KEY`);
  return { store: openStore(`s3://${loc.bucket}`, creds), prefix: loc.prefix };
}

function numberList(flag: string, s: string): number[] {
  const out = s.split(",").map((x) => Number(x.trim()));
  if (out.some((x) => !Number.isFinite(x)))
    throw new UsageError(`${flag}: "${s}" is not a comma list of numbers`);
  return out;
}

function parseStrength(v: {
  scale?: string;
  scales?: string;
  kernel?: string;
}): Strength | undefined {
  const given = [v.scale, v.scales, v.kernel].filter((x) => x !== undefined).length;
  if (given > 1) throw new UsageError("use one of --scale, --scales, --kernel");
  if (v.scale !== undefined) return { type: "constant", value: numberList("--scale", v.scale)[0]! };
  if (v.scales !== undefined)
    return { type: "per-layer", values: numberList("--scales", v.scales) };
  if (v.kernel !== undefined) {
    const k = numberList("--kernel", v.kernel);
    if (k.length !== 4)
      throw new UsageError(`--kernel needs PEAK,WIDTH,MAX,MIN, got ${k.length} numbers`);
    return { type: "tent", peak: k[0]!, width: k[1]!, max: k[2]!, min: k[3]! };
  }
  return undefined;
}

function parseWriter(s: string): WriterRule {
  const m = /^([a-z_]+):(-1|-2):(.+)$/.exec(s);
  if (!m || !(WRITER_TARGETS as readonly string[]).includes(m[1]!)) {
    throw new UsageError(
      `--writer "${s}" is not TARGET:AXIS:REGEX (TARGET one of ${WRITER_TARGETS.join(", ")})`,
    );
  }
  return { target: m[1] as WriterTarget, residualAxis: Number(m[2]) as -1 | -2, pattern: m[3]! };
}

function fmtBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`;
}

/** A one-line progress bar on stderr (only when it is a terminal). */
function progressBar() {
  const tty = process.stderr.isTTY === true;
  const t0 = Date.now();
  let total = 1;
  let tensors = 0;
  let last = 0;
  return {
    start(t: number, n: number) {
      total = Math.max(t, 1);
      tensors = n;
    },
    update(bytes: number, done: number, file: string) {
      const now = Date.now();
      if (!tty || now - last < 100) return;
      last = now;
      const frac = Math.min(bytes / total, 1);
      const secs = (now - t0) / 1000;
      const rate = bytes / Math.max(secs, 1e-3);
      const eta = rate > 0 ? (total - bytes) / rate : 0;
      const width = 30;
      const bar = "█".repeat(Math.round(frac * width)).padEnd(width, "░");
      process.stderr.write(
        `\r${bar} ${(frac * 100).toFixed(0).padStart(3)}% ${fmtBytes(bytes)}/${fmtBytes(total)} ${done}/${tensors} tensors ${fmtBytes(rate)}/s ETA ${eta.toFixed(0)}s ${file}`.padEnd(
          120,
        ),
      );
    },
    done() {
      if (tty) process.stderr.write("\n");
    },
  };
}

/** The `abl patch` command. */
export const patchCommand: Command = {
  name: ["patch"],
  summary: "remove the refusal direction from a checkpoint's weights (streamed, folder or S3)",
  usage: USAGE,
  async run(argv, signal) {
    const { values: v } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        model: { type: "string" },
        direction: { type: "string" },
        out: { type: "string" },
        targets: { type: "string" },
        method: { type: "string" },
        scale: { type: "string" },
        scales: { type: "string" },
        kernel: { type: "string" },
        "embed-scale": { type: "string" },
        "keep-tied": { type: "boolean" },
        writer: { type: "string", multiple: true },
        fsync: { type: "boolean" },
        "shards-at-once": { type: "string" },
        json: { type: "boolean" },
      },
    }).valueOf() as { values: Record<string, string | boolean | string[] | undefined> };
    const str = (k: string) => v[k] as string | undefined;
    const model = str("model");
    const directionArg = str("direction");
    const outArg = str("out");
    if (!model || !directionArg || !outArg)
      throw new UsageError("--model, --direction and --out are required");
    const atOnceArg = str("shards-at-once");
    const shardsAtOnce = atOnceArg === undefined ? undefined : Number(atOnceArg);
    if (shardsAtOnce !== undefined && !(Number.isInteger(shardsAtOnce) && shardsAtOnce >= 1))
      throw new UsageError(`--shards-at-once must be a positive integer, got "${atOnceArg}"`);
    if (shardsAtOnce !== undefined && shardsAtOnce > 1 && outArg.startsWith("s3://"))
      throw new UsageError(
        `--shards-at-once ${shardsAtOnce} needs a local --out; an object store takes one file at a time`,
      );
    const method = (str("method") ?? "project") as PatchMethod;
    if (method !== "project" && method !== "norm-preserving")
      throw new UsageError(`--method must be project or norm-preserving, got "${method}"`);
    let targets: WriterTarget[] | undefined;
    if (str("targets") !== undefined) {
      targets = str("targets")!
        .split(",")
        .map((t) => t.trim()) as WriterTarget[];
      for (const t of targets)
        if (!(WRITER_TARGETS as readonly string[]).includes(t))
          throw new UsageError(`unknown target "${t}"`);
    }
    const strength = parseStrength({
      ...(str("scale") === undefined ? {} : { scale: str("scale")! }),
      ...(str("scales") === undefined ? {} : { scales: str("scales")! }),
      ...(str("kernel") === undefined ? {} : { kernel: str("kernel")! }),
    });
    const embedScale =
      str("embed-scale") === undefined
        ? undefined
        : numberList("--embed-scale", str("embed-scale")!)[0];
    const writers = (v.writer as string[] | undefined)?.map(parseWriter);

    const hash = directionArg.lastIndexOf("#");
    const directionPath =
      hash > 0 && /^\d+$/.test(directionArg.slice(hash + 1))
        ? directionArg.slice(0, hash)
        : directionArg;
    const layer = directionPath === directionArg ? undefined : Number(directionArg.slice(hash + 1));

    const t0 = performance.now();
    let files: CheckpointFiles;
    if (model.startsWith("s3://")) {
      const { store, prefix } = openS3(model);
      files = storeCheckpointFiles(store, prefix);
    } else {
      files = localCheckpointFiles(model);
    }
    const ck = await loadCheckpoint(files, signal);
    const directions = await parseDirectionFile(new Uint8Array(await readFile(directionPath)), {
      hidden: ck.config.hiddenSize,
      source: directionArg,
      ...(layer === undefined ? {} : { layer }),
    });
    const plan = buildPlan(ck, directions, {
      method,
      ...(targets ? { targets } : {}),
      ...(strength ? { strength } : {}),
      ...(embedScale === undefined ? {} : { embedScale }),
      ...(v["keep-tied"] ? { untie: false } : {}),
      ...(writers ? { rules: writers } : {}),
    });
    let out: OutputFolder;
    if (outArg.startsWith("s3://")) {
      const { store, prefix } = openS3(outArg);
      if (prefix === "") throw new UsageError(`--out ${outArg} needs a prefix inside the bucket`);
      out = createStoreOutput(store, prefix);
    } else {
      out = await createLocalOutput(outArg, { fsync: v.fsync === true });
    }
    const bar = progressBar();
    const gen = patchCheckpoint(ck, plan, out, {
      signal,
      ...(shardsAtOnce === undefined ? {} : { shardsAtOnce }),
    });
    let report: AbliterationReport;
    let totalBytes = 0;
    for (;;) {
      const r = await gen.next();
      if (r.done) {
        report = r.value;
        break;
      }
      const e = r.value;
      if (e.type === "start") {
        totalBytes = e.totalBytes;
        bar.start(e.totalBytes, e.totalTensors);
      } else if (e.type === "progress") bar.update(e.bytes, e.tensors, e.file);
      else if (!process.stderr.isTTY && !v.json)
        console.error(`wrote ${e.name} (${fmtBytes(e.size)})`);
    }
    bar.done();
    const wall = (performance.now() - t0) / 1000;
    const maxLeak = Math.max(0, ...report.tensors.map((t) => t.leakage));
    const summary = {
      tool: "abl patch",
      out: out.location,
      method: report.method,
      edited_tensors: report.tensors.length,
      untied: report.untied,
      max_leakage: maxLeak,
      bytes: totalBytes,
      wall_s: Math.round(wall * 1000) / 1000,
      gb_per_s: Math.round((totalBytes / 1e9 / wall) * 1000) / 1000,
      peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
      ...(out.io && {
        io_bytes: { direct: out.io.direct, staged: out.io.staged, buffered: out.io.buffered },
      }),
    };
    if (v.json) console.log(JSON.stringify(summary));
    else {
      console.log(
        `patched ${summary.edited_tensors} tensors (${report.method}${report.untied ? ", embeddings untied" : ""}) → ${out.location}\n` +
          `${fmtBytes(totalBytes)} in ${summary.wall_s} s (${summary.gb_per_s} GB/s), max leakage ${maxLeak.toExponential(2)}, peak RSS ${summary.peak_rss_mib} MiB`,
      );
    }
    return 0;
  },
};
