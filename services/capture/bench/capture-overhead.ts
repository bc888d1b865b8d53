/**
 * Capture through the service vs calling the engine directly, side by side in one run.
 *
 * Direct: load SmolLM2-135M-Instruct, render the agent-shell prompts with the chat template and
 * run engine.capture on both buckets — what a user would write without this project.
 * Service: the capture service as a process over real NATS and MinIO; StartCapture, then poll
 * until the activations artifact is published (model load, capture, upload, manifest, KV). The
 * service's model cache is warmed by one untimed job first; every timed job uses a new split
 * seed, so its step key is new and nothing is served from the cache.
 *
 * Run: npm run bench:capture [-- --reps N]   (needs the SmolLM2 GGUF, nats-server and MinIO)
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { convertGgufToHf } from "@abl/checkpoint";
import { freePort, startNats, startS3 } from "@abl/e2e/servers";
import { drain, loadModel, loadTokenizer } from "@abl/engine";
import { modelFolderDigest, presetContrastSet, promptMessages } from "@abl/refusal";
import { CaptureService, createClient, JobState } from "@abl/rpc";
import { createS3Store, publishArtifact } from "@abl/store";

const ROOT = new URL("../../../", import.meta.url).pathname;
const { values } = parseArgs({ options: { reps: { type: "string", default: "3" } }, strict: true });
const reps = Number(values.reps);
if (!Number.isInteger(reps) || reps < 1)
  throw new Error(`--reps must be a positive integer, got ${values.reps}`);

const cache = process.env.ABL_CACHE_DIR ?? join(homedir(), ".cache", "abl");
const gguf =
  process.env.ABL_SMOLLM2_GGUF ?? (await readFile(join(cache, "smollm2.path"), "utf8")).trim();
const tmp = await mkdtemp(join(tmpdir(), "abl-capture-bench-"));
const nats = await startNats();
const s3 = await startS3();
const child = { proc: undefined as ReturnType<typeof spawn> | undefined };
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
  await publishArtifact(store, "models/smollm2", files, { kind: "model" });
  const set = presetContrastSet("agent-shell");

  async function direct(): Promise<number> {
    const t0 = performance.now();
    const [engine, tokenizer] = await Promise.all([loadModel(modelDir), loadTokenizer(modelDir)]);
    try {
      for (const b of ["refuse", "comply"] as const) {
        const ids = set[b].map(
          (p) => tokenizer.applyChatTemplate(promptMessages(p), { addGenerationPrompt: true }).ids,
        );
        await drain(engine.capture({ prompts: ids, positions: "last" }));
      }
    } finally {
      await engine.dispose();
    }
    return (performance.now() - t0) / 1000;
  }

  const port = await freePort();
  child.proc = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "services/capture/src/main.ts")],
    {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "inherit"],
      env: {
        ...process.env,
        NATS_URL: nats.url,
        ABL_STORE: "s3://abl-bench",
        ABL_S3_ENDPOINT: s3.endpoint,
        ABL_S3_ACCESS_KEY: s3.accessKey,
        ABL_S3_SECRET_KEY: s3.secretKey,
        ABL_MODEL_CACHE: join(tmp, "model-cache"),
        GRPC_PORT: String(port),
        METRICS_PORT: String(await freePort()),
        LOG_LEVEL: "warn",
      },
    },
  );
  const client = createClient(CaptureService, { address: `127.0.0.1:${port}` });
  async function viaService(seed: number): Promise<number> {
    const t0 = performance.now();
    let started: { jobId: string } | undefined;
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
          await new Promise((r) => setTimeout(r, 200));
          return undefined;
        });
    }
    for (;;) {
      // While the service's event loop is busy loading the model, its KV read can miss the NATS
      // deadline; such a Get is simply asked again.
      const r = await client.getCapture({ jobId: started.jobId }).catch((err) => {
        const code = (err as { code?: string }).code;
        if (code === "DEADLINE_EXCEEDED" || code === "UNAVAILABLE") return undefined;
        throw err;
      });
      if (!r) {
        await new Promise((res) => setTimeout(res, 100));
        continue;
      }
      if (r.status?.state === JobState.SUCCEEDED) break;
      if (r.status?.state === JobState.FAILED)
        throw new Error(`capture failed: ${r.status.error?.message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return (performance.now() - t0) / 1000;
  }

  // Warm-up (untimed): page cache, the service's model cache, JIT.
  await direct();
  await viaService(1000);
  const d: number[] = [];
  const s: number[] = [];
  for (let i = 0; i < reps; i++) {
    d.push(await direct());
    s.push(await viaService(1 + i));
    console.error(
      `rep ${i + 1}: direct ${d.at(-1)?.toFixed(2)} s, service ${s.at(-1)?.toFixed(2)} s`,
    );
  }
  client.close();
  const median = (x: number[]) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)] as number;
  const md = median(d);
  const ms = median(s);
  console.log(
    JSON.stringify({
      bench: "capture-overhead",
      prompts: set.refuse.length + set.comply.length,
      reps,
      warm: true,
      directSeconds: d,
      serviceSeconds: s,
      directMedian: md,
      serviceMedian: ms,
      ratio: ms / md,
      overheadPercent: 100 * (ms / md - 1),
    }),
  );
} finally {
  if (child.proc && child.proc.exitCode === null) {
    const exited = new Promise((r) => child.proc?.once("exit", r));
    child.proc.kill("SIGTERM");
    await exited;
  }
  await s3.stop();
  await nats.stop();
  await rm(tmp, { recursive: true, force: true });
}
