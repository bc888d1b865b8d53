/**
 * `abl run SPEC.yaml`: runs a sweep embedded — in-memory bus, a local folder as the object store,
 * the built-in engine for capture and serving, the bubblewrap sandbox for trials — with progress
 * per step, resuming whatever an earlier (killed) run of the same spec finished.
 */
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createMemoryBus } from "@abl/bus";
import {
  createBuiltinServe,
  exportReport,
  parseSweepSpec,
  resolveSpecPaths,
  runSweep,
  type StepDefinition,
  type StepEvent,
  SWEEP_STEPS,
  type SweepResult,
  type SweepSpec,
  startStepWorkers,
  validateSweepInputs,
} from "@abl/pipeline";
import { createLocalStore, readArtifact } from "@abl/store";
import { type Command, parseCli, UsageError } from "../command.ts";
import { createProgress, type ProgressLine } from "../progress.ts";

const USAGE = `usage: abl run SPEC.yaml [--out DIR] [--json] [--cluster HOST:PORT]

Runs the sweep described by SPEC.yaml on this machine: capture → directions → patch per variant →
serve → refusal evaluation → bench → report. Artifacts go to DIR/store (content-addressed, so a
rerun after Ctrl-C or a kill resumes where it stopped); the report is copied to DIR/report.html,
DIR/summary.json and DIR/master_summary.csv.

options:
  --out DIR     output folder (default ./abl-out/<spec name>)
  --json        print the result as JSON instead of the summary table
  --cluster A   send the spec to the scheduler service at A (host:port) instead, follow its
                progress, and print the summary; artifacts stay in the cluster's object store
See README.md ("Writing a sweep spec") for the spec's keys.`;

/** Options of {@link runSpec}. */
export interface RunSpecOptions {
  readonly out: string;
  readonly json: boolean;
  readonly signal: AbortSignal;
  /** Cache for Hub downloads and GGUF conversions (default ~/.cache/abl). */
  readonly cacheDir?: string;
}

/**
 * A trial can spend minutes in one LLM turn on a loaded CPU; the bench step heartbeats per
 * event, so a job is only redelivered when its worker is truly gone.
 */
const EMBEDDED_ACK_WAIT_MS = 15 * 60_000;

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? "–" : `${(100 * x).toFixed(1)}%`;

/** Runs a parsed spec embedded and prints the summary; shared by `abl run` and `abl demo`. */
export async function runSpec(
  spec: SweepSpec,
  specDir: string,
  o: RunSpecOptions,
): Promise<number> {
  const out = resolve(o.out);
  const cacheDir = o.cacheDir ?? process.env.ABL_CACHE_DIR ?? join(homedir(), ".cache", "abl");
  const resolved = resolveSpecPaths(spec, specDir);
  await validateSweepInputs(resolved, cacheDir);

  // fsync is off: a killed process never leaves a half artifact (temp files + rename, manifest
  // last); fsync would only add power-loss safety at ~1 s per GB written here.
  const store = createLocalStore({ root: join(out, "store"), fsync: false });
  const bus = createMemoryBus();
  const sweep = resolved.name.replaceAll(".", "-");
  const steps = {
    bus,
    store,
    sweep,
    definitions: SWEEP_STEPS as unknown as StepDefinition<never, unknown>[],
  };
  const workers = startStepWorkers({ ...steps, maxDeliver: 2, ackWaitMs: EMBEDDED_ACK_WAIT_MS });
  const progress = createProgress();
  const lines = new Map<string, ProgressLine>();
  const labels = new Map<string, string>();
  const events = new AbortController();
  const watch = (async () => {
    for await (const e of bus.subscribeEvents(`${sweep}.step`, { signal: events.signal })) {
      const ev = e.data as StepEvent;
      if (ev.type === "progress") {
        let line = lines.get(ev.key);
        if (!line) {
          line = progress.line(labels.get(ev.key) ?? ev.kind, ev.unit);
          lines.set(ev.key, line);
        }
        line.update(ev.done, ev.total, ev.message ?? "");
      } else if (ev.type === "failed") {
        progress.log(
          `✖ ${ev.kind} attempt ${ev.attempt}${ev.final ? " (final)" : ", will retry"}: ${ev.error}`,
        );
      }
    }
  })();

  let phaseCount = 0;
  let result: SweepResult;
  try {
    result = await runSweep({
      spec: resolved,
      specDir,
      steps,
      cacheDir,
      serve: createBuiltinServe({ store, cacheDir, maxPositions: 4096 }),
      signal: o.signal,
      onEvent: (e) => {
        if (e.type === "phase") {
          phaseCount++;
          progress.log(`[${phaseCount}] ${e.phase}${e.detail ? `: ${e.detail}` : ""}`);
        } else {
          labels.set(e.key, e.label);
          const line = lines.get(e.key);
          if (line) line.finish(e.cached ? "(cached)" : "");
          else progress.log(`✔ ${e.label}${e.cached ? " (cached, from an earlier run)" : ""}`);
          lines.delete(e.key);
        }
      },
    });
  } finally {
    events.abort();
    await watch.catch(() => undefined);
    progress.close();
    await workers.stop();
    await bus.close();
  }

  const files = await exportReport(store, result.reportPrefix, out);
  const summary = JSON.parse(await readFile(join(out, "summary.json"), "utf8")) as {
    refusal: Record<
      string,
      {
        refusal: Record<
          string,
          { count: number; n: number; rate: number; low: number; high: number }
        >;
        kl?: { mean: number };
      }
    >;
    summaries: {
      variant: string;
      trials: number;
      passes: number;
      accuracy: number | null;
      ci: { low: number; high: number } | null;
    }[];
    comparisons: { treatment: string; baseline: string; fisher?: { p: number } }[];
  };
  if (o.json) {
    console.log(
      JSON.stringify(
        { out, files, selectedLayer: result.directions?.selection.layer, summary },
        null,
        2,
      ),
    );
    return 0;
  }
  const report = await readArtifact(store, result.reportPrefix);
  const rows = result.variants.map((v) => {
    const r = summary.refusal[v.name];
    const markers = r?.refusal.markers;
    const s = summary.summaries.find((x) => x.variant === v.name);
    return [
      v.name,
      v.kind === "abliterated" ? `L${v.layer} λ=${v.scale} ${v.method}` : v.kind,
      markers
        ? `${markers.count}/${markers.n} ${pct(markers.rate)} [${pct(markers.low)}, ${pct(markers.high)}]`
        : "–",
      r?.kl ? r.kl.mean.toFixed(4) : "–",
      s ? `${s.passes}/${s.trials}` : "–",
      s ? `${pct(s.accuracy)}${s.ci ? ` [${pct(s.ci.low)}, ${pct(s.ci.high)}]` : ""}` : "–",
    ];
  });
  const head = [
    "variant",
    "edit",
    "refusal (markers, 95% CI)",
    "KL vs base",
    "passes",
    "accuracy (95% CI)",
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  console.log("");
  console.log(
    `selected layer: ${result.directions?.selection.layer} (${result.directions?.selection.policy})`,
  );
  console.log(fmt(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) console.log(fmt(r));
  console.log("");
  console.log(`report: ${join(out, "report.html")}`);
  console.log(
    `store:  ${join(out, "store")} (report artifact ${result.reportPrefix}, ${report?.files.length ?? 0} files)`,
  );
  return 0;
}

/** `abl run --cluster`: the scheduler runs the sweep; this follows WatchSweep and prints GetSweep. */
async function runOnCluster(
  address: string,
  specYaml: string,
  json: boolean,
  signal: AbortSignal,
): Promise<number> {
  const { createClient, JobState, SchedulerService } = await import("@abl/rpc");
  const client = createClient(SchedulerService, { address });
  try {
    const started = await client.startSweep(
      { specYaml, sweepId: "" },
      { signal, timeoutMs: 60_000 },
    );
    console.error(
      `sweep ${started.sweepId}${started.cached ? " (finished earlier: cached)" : " started"} on ${address}`,
    );
    const progress = createProgress();
    const lines = new Map<string, ProgressLine>();
    for await (const { event } of client.watchSweep({ sweepId: started.sweepId }, { signal })) {
      const e = event?.event;
      if (e?.case === "progress") {
        let line = lines.get(e.value.jobId);
        if (!line) {
          line = progress.line(e.value.step, e.value.unit);
          lines.set(e.value.jobId, line);
        }
        line.update(Number(e.value.done), Number(e.value.total), e.value.message);
      } else if (e?.case === "step") {
        const line = lines.get(e.value.stepKey);
        const text = `${e.value.kind}${e.value.cached ? " (cached)" : ""}${e.value.error ? `: ${e.value.error.message}` : ""}`;
        if (line) line.finish(text);
        else progress.log(`${e.value.state === JobState.FAILED ? "✖" : "✔"} ${text}`);
        lines.delete(e.value.stepKey);
      }
    }
    progress.close();
    const got = await client.getSweep({ sweepId: started.sweepId }, { signal, timeoutMs: 60_000 });
    if (json) {
      console.log(JSON.stringify(got, (_k, v) => (typeof v === "bigint" ? Number(v) : v), 2));
    } else {
      for (const v of got.summary?.variants ?? []) {
        console.log(`${v.variant.padEnd(20)} ${v.passed}/${v.trials} passed`);
      }
      if (got.summary?.report)
        console.log(`report: ${got.summary.report.key} (in the cluster's object store)`);
    }
    if (got.status?.state !== JobState.SUCCEEDED) {
      console.error(`sweep ended ${got.status?.error?.message ?? "without success"}`);
      return 1;
    }
    return 0;
  } finally {
    client.close();
  }
}

export const runCommand: Command = {
  name: ["run"],
  summary: "run a sweep spec embedded on this machine (resumes after a kill)",
  usage: USAGE,
  async run(argv, signal) {
    const { values, positionals } = parseCli(() =>
      parseArgs({
        args: argv,
        allowPositionals: true,
        strict: true,
        options: {
          out: { type: "string" },
          json: { type: "boolean", default: false },
          cluster: { type: "string" },
        },
      }),
    );
    if (positionals.length !== 1) throw new UsageError("give exactly one SPEC.yaml");
    const file = resolve(positionals[0]!);
    const text = await readFile(file, "utf8").catch((err: unknown) => {
      throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
    });
    const spec = parseSweepSpec(text, file);
    if (values.cluster) return runOnCluster(values.cluster, text, values.json, signal);
    return runSpec(spec, dirname(file), {
      out: values.out ?? join("abl-out", spec.name),
      json: values.json,
      signal,
    });
  },
};
