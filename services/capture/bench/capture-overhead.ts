/**
 * Capture through the service vs capturing directly, side by side in one run.
 *
 * Direct: what `abl capture --model-digest D` does locally: load SmolLM2-135M-Instruct, render
 * the agent-shell prompts, capture both buckets and write the activations artifact to a local
 * folder store (captureActivations, the CLI's own code path).
 * Service: the capture service as a long-running process over real NATS and MinIO; the client
 * calls StartCapture and follows WatchCapture until the job succeeded (artifact and manifest
 * in MinIO, KV record written).
 *
 * Direct, engine loaded: the same with the engine loaded once beforehand (untimed), i.e. the
 * capture work alone; service (warm) against it is the service's own overhead (prompt
 * resolution, bus, KV, gRPC, S3 upload).
 *
 * Cold, `--cold-reps` times: a fresh `abl capture` process (node start and all) against the
 * first job of a freshly started service process with an empty model cache (it copies the model
 * out of MinIO and loads it; its start-up is not timed, a service is started before its first
 * job arrives). One in-process direct call is reported beside them. Then `--reps` warm
 * triples, alternating; every job uses a new split seed, so no job is answered from an earlier
 * artifact. The service's own per-job breakdown ("capture done" log: model fetch, load,
 * capture, publish, event-loop delay) is printed alongside, so any remaining overhead has a
 * name.
 *
 * Run: npm run bench:capture [-- --reps N --cold-reps N]   (needs the SmolLM2 GGUF, nats-server
 * and MinIO)
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { homedir, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { convertGgufToHf } from "@abl/checkpoint";
import { freePort, startNats, startS3 } from "@abl/e2e/servers";
import { type Engine, type LoadedTokenizer, loadModel, loadTokenizer } from "@abl/engine";
import {
  captureActivations,
  modelFolderDigest,
  presetContrastSet,
  splitContrastSet,
} from "@abl/refusal";
import { CaptureService, createClient, JobState } from "@abl/rpc";
import { createS3Store, openStore, publishArtifact } from "@abl/store";

const ROOT = new URL("../../../", import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "3" },
    "cold-reps": { type: "string", default: "3" },
  },
  strict: true,
});
const reps = Number(values.reps);
if (!Number.isInteger(reps) || reps < 1)
  throw new Error(`--reps must be a positive integer, got ${values.reps}`);
const coldReps = Number(values["cold-reps"]);
if (!Number.isInteger(coldReps) || coldReps < 1)
  throw new Error(`--cold-reps must be a positive integer, got ${values["cold-reps"]}`);

const cache = process.env.ABL_CACHE_DIR ?? join(homedir(), ".cache", "abl");
const gguf =
  process.env.ABL_SMOLLM2_GGUF ?? (await readFile(join(cache, "smollm2.path"), "utf8")).trim();
const tmp = await mkdtemp(join(tmpdir(), "abl-capture-bench-"));
const nats = await startNats();
const s3 = await startS3();
const services: ReturnType<typeof spawn>[] = [];
const load = [loadavg()[0]];
try {
  const modelDir = join(tmp, "smollm2");
  await convertGgufToHf(gguf, modelDir);
  const digest = await modelFolderDigest(modelDir);
  const store = createS3Store({
    endpoint: s3.endpoint,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    bucket: "abl-bench",
  });
  const files = [];
  for (const name of await readdir(modelDir))
    files.push({ name, body: new Uint8Array(await readFile(join(modelDir, name))) });
  await publishArtifact(store, "models/smollm2", files, { kind: "model", digest });
  const set = presetContrastSet("agent-shell");
  const localStore = openStore(join(tmp, "direct-store"));

  let preloaded: { engine: Engine; tokenizer: LoadedTokenizer } | undefined;
  async function direct(seed: number): Promise<number> {
    const t0 = performance.now();
    const held = preloaded;
    const r = await captureActivations({
      store: localStore,
      modelDir,
      modelDigest: digest,
      set,
      splits: splitContrastSet(set, seed),
      ...(held ? { builtin: async () => held } : {}),
    });
    if (r.cached) throw new Error(`direct seed ${seed} was answered from the store`);
    return (performance.now() - t0) / 1000;
  }

  // The service's own account of each job (one JSON log line per finished capture).
  const breakdowns: Record<string, unknown>[] = [];
  /** Starts a capture service process with model cache `cacheDir`; resolves once it serves gRPC. */
  async function startService(cacheDir: string) {
    const port = await freePort();
    const proc = spawn(
      process.execPath,
      ["--import", "tsx", join(ROOT, "services/capture/src/main.ts")],
      {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "inherit"],
        env: {
          ...process.env,
          NATS_URL: nats.url,
          ABL_STORE: "s3://abl-bench",
          ABL_S3_ENDPOINT: s3.endpoint,
          ABL_S3_ACCESS_KEY: s3.accessKey,
          ABL_S3_SECRET_KEY: s3.secretKey,
          ABL_MODEL_CACHE: cacheDir,
          GRPC_PORT: String(port),
          METRICS_PORT: String(await freePort()),
          LOG_LEVEL: "info",
        },
      },
    );
    services.push(proc);
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      try {
        const r = JSON.parse(line) as Record<string, unknown>;
        if (r.msg === "capture done") breakdowns.push(r);
      } catch {
        // not a log line
      }
    });
    const client = createClient(CaptureService, { address: `127.0.0.1:${port}` });
    // Readiness of the service process is not part of any job: wait for its gRPC port.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await client.getCapture({ jobId: "0".repeat(64) }, { timeoutMs: 5_000 }).then(
        () => true,
        (err: { code?: string }) => err.code === "NOT_FOUND",
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error("the capture service did not start in 60 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      client,
      async stop() {
        client.close();
        if (proc.exitCode === null) {
          const exited = new Promise((r) => proc.once("exit", r));
          proc.kill("SIGTERM");
          await exited;
        }
      },
    };
  }
  type Client = Awaited<ReturnType<typeof startService>>["client"];
  async function viaService(client: Client, seed: number): Promise<number> {
    const t0 = performance.now();
    let started: { jobId: string; cached: boolean } | undefined;
    while (!started) {
      started = await client
        .startCapture(
          {
            model: { digest, storeKey: "models/smollm2" },
            contrastSet: {
              case: "contrastSpec",
              value: { preset: "agent-shell", seed: BigInt(seed) },
            },
          },
          { timeoutMs: 30_000 },
        )
        .catch(async (err) => {
          if ((err as { code?: string }).code !== "UNAVAILABLE") throw err;
          await new Promise((r) => setTimeout(r, 50));
          return undefined;
        });
    }
    if (started.cached) throw new Error(`service seed ${seed} was answered from the store`);
    for await (const { event } of client.watchCapture(
      { jobId: started.jobId },
      { timeoutMs: 600_000 },
    )) {
      if (event?.state === JobState.SUCCEEDED) return (performance.now() - t0) / 1000;
      if (event?.state === JobState.FAILED || event?.state === JobState.CANCELLED)
        throw new Error(`capture failed: ${event.error?.message}`);
    }
    throw new Error("WatchCapture ended before the job did");
  }

  // Cold as a user meets it: a fresh `abl capture` process (node start and all), the same fresh
  // start the service process had. The in-process direct run below reuses memory this bench
  // process already touched (model upload, conversion), which a new process cannot.
  async function directCli(seed: number): Promise<number> {
    const t0 = performance.now();
    const cli = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(ROOT, "cli/src/main.ts"),
        "capture",
        "--model",
        modelDir,
        "--model-digest",
        digest,
        "--set",
        "agent-shell",
        "--seed",
        String(seed),
        "--store",
        join(tmp, "cli-store"),
        "--json",
      ],
      { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] },
    );
    const code = await new Promise<number | null>((r) => cli.on("close", r));
    if (code !== 0) throw new Error(`abl capture exited with ${code}`);
    return (performance.now() - t0) / 1000;
  }
  const coldCli: number[] = [];
  const coldService: number[] = [];
  let warmService: Awaited<ReturnType<typeof startService>> | undefined;
  for (let i = 0; i < coldReps; i++) {
    // Nothing else of ours runs during either: an idle service holding a loaded model was seen
    // to slow a concurrent `abl capture` process by 20-50 %.
    await warmService?.stop();
    coldCli.push(await directCli(2000 + i));
    warmService = await startService(join(tmp, `model-cache-${i}`));
    coldService.push(await viaService(warmService.client, 1000 + i));
    console.error(
      `cold rep ${i + 1}: abl capture process ${coldCli.at(-1)?.toFixed(2)} s, new service's first job ${coldService.at(-1)?.toFixed(2)} s`,
    );
  }
  const coldDirect = await direct(3000);
  console.error(`cold: direct in-process ${coldDirect.toFixed(2)} s`);
  const service = warmService as NonNullable<typeof warmService>;
  const d: number[] = [];
  const s: number[] = [];
  const p: number[] = [];
  for (let i = 0; i < reps; i++) {
    d.push(await direct(1 + i));
    s.push(await viaService(service.client, 1 + i));
    preloaded = { engine: await loadModel(modelDir), tokenizer: await loadTokenizer(modelDir) };
    try {
      p.push(await direct(100 + i));
    } finally {
      await preloaded.engine.dispose();
      preloaded = undefined;
    }
    console.error(
      `warm rep ${i + 1}: direct ${d.at(-1)?.toFixed(2)} s, service ${s.at(-1)?.toFixed(2)} s, direct with the engine loaded ${p.at(-1)?.toFixed(2)} s`,
    );
  }
  load.push(loadavg()[0]);
  const median = (x: number[]) => {
    const o = [...x].sort((a, b) => a - b);
    const m = Math.floor(o.length / 2);
    return o.length % 2 ? (o[m] as number) : ((o[m - 1] as number) + (o[m] as number)) / 2;
  };
  const md = median(d);
  const ms = median(s);
  const round = (x: number) => Math.round(x * 1000) / 1000;
  console.log(
    JSON.stringify({
      bench: "capture-overhead",
      prompts: set.refuse.length + set.comply.length,
      reps,
      cold: {
        cliSeconds: coldCli.map(round),
        serviceSeconds: coldService.map(round),
        ratios: coldCli.map((x, i) => round((coldService[i] as number) / x)),
        cliMedian: round(median(coldCli)),
        serviceMedian: round(median(coldService)),
        serviceVsCli: round(median(coldService) / median(coldCli)),
        directSeconds: round(coldDirect),
        serviceVsDirect: round(median(coldService) / coldDirect),
      },
      warm: {
        directSeconds: d.map(round),
        serviceSeconds: s.map(round),
        ratios: d.map((x, i) => round((s[i] as number) / x)),
        directMedian: round(md),
        serviceMedian: round(ms),
        ratio: round(ms / md),
        directEngineLoadedSeconds: p.map(round),
        directEngineLoadedMedian: round(median(p)),
        serviceVsEngineLoadedRatio: round(ms / median(p)),
      },
      service: breakdowns.map((b) => ({
        seconds: b.seconds,
        fetched: b.fetched,
        fetchSeconds: b.fetchSeconds,
        loaded: b.loaded,
        loadSeconds: b.loadSeconds,
        captureSeconds: b.captureSeconds,
        publishSeconds: b.publishSeconds,
        eventLoopMaxMs: b.eventLoopMaxMs,
      })),
      loadAverage1m: { start: round(load[0] as number), end: round(load[1] as number) },
    }),
  );
} finally {
  for (const proc of services) {
    if (proc.exitCode !== null) continue;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    await exited;
  }
  await s3.stop();
  await nats.stop();
  await rm(tmp, { recursive: true, force: true });
}
