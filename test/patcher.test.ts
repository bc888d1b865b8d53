/**
 * The patcher service as a process with real NATS and MinIO: a patch job in, a patched model out
 * in the store (same bytes as the library produces locally), a second identical request served
 * from the store.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadCheckpoint, localCheckpointFiles } from "@abl/checkpoint";
import { buildPlan, createLocalOutput, parseDirectionFile, patchCheckpoint } from "@abl/patch";
import { createClient, JobState, PatcherService, PatchMethod } from "@abl/rpc";
import {
  collectBytes,
  createS3Store,
  type ObjectStore,
  publishArtifact,
  readArtifact,
  readArtifactFile,
} from "@abl/store";
import { freePort, type NatsServer, type S3Server, startNats, startS3 } from "./support/servers.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const FIX = join(ROOT, "libs/patch/fixtures");

let nats: NatsServer;
let s3: S3Server;
let store: ObjectStore;
let service: ChildProcess | undefined;
let tmp: string;
let grpcPort: number;

async function upload(prefix: string, dir: string): Promise<void> {
  const files = [];
  for (const name of await readdir(dir))
    files.push({ name, body: new Uint8Array(await readFile(join(dir, name))) });
  await publishArtifact(store, prefix, files, { kind: "model" });
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "abl-patcher-e2e-"));
  nats = await startNats();
  s3 = await startS3();
  store = createS3Store({
    endpoint: s3.endpoint,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    bucket: "abl-e2e",
  });
  await upload("models/tiny-bf16", join(FIX, "tiny-bf16"));
  await publishArtifact(
    store,
    "directions/tiny",
    [
      {
        name: "directions.safetensors",
        body: new Uint8Array(await readFile(join(FIX, "directions.safetensors"))),
      },
    ],
    { kind: "directions" },
  );
  grpcPort = await freePort();
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "services/patcher/src/main.ts")],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        NATS_URL: nats.url,
        ABL_STORE: "s3://abl-e2e",
        ABL_S3_ENDPOINT: s3.endpoint,
        ABL_S3_ACCESS_KEY: s3.accessKey,
        ABL_S3_SECRET_KEY: s3.secretKey,
        GRPC_PORT: String(grpcPort),
        METRICS_PORT: String(await freePort()),
        LOG_LEVEL: "warn",
      },
    },
  );
  service = child;
  let log = "";
  child.stdout?.on("data", (d) => {
    log = (log + d).slice(-8000);
  });
  child.stderr?.on("data", (d) => {
    log = (log + d).slice(-8000);
  });
  child.once("exit", (code) => {
    if (code !== 0 && code !== null) console.error(`patcher exited with ${code}:\n${log}`);
  });
});

after(async () => {
  if (service && service.exitCode === null) {
    const exited = new Promise((r) => service!.once("exit", r));
    service.kill("SIGTERM");
    const t = setTimeout(() => service!.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(t);
  }
  await s3?.stop();
  await nats?.stop();
  await rm(tmp, { recursive: true, force: true });
});

async function withRetry<T>(f: () => Promise<T>, what: string, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await f();
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what} kept failing`, { cause: err });
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

test("patch job in, patched model out, second identical job served from the store", async () => {
  const client = createClient(PatcherService, { address: `127.0.0.1:${grpcPort}` });
  try {
    const request = {
      model: { storeKey: "models/tiny-bf16", digest: "tiny-bf16-fixture" },
      direction: { key: "directions/tiny" },
      directionLayer: 1,
      method: PatchMethod.PROJECT,
    };
    const first = await withRetry(
      () => client.startPatch(request, { timeoutMs: 5_000 }),
      "StartPatch",
    );
    assert.equal(first.cached, false);
    assert.match(first.jobId, /^[0-9a-f]{64}$/);

    let final: JobState | undefined;
    const states: JobState[] = [];
    for await (const { event } of client.watchPatch(
      { jobId: first.jobId },
      { timeoutMs: 120_000 },
    )) {
      states.push(event!.state);
      final = event!.state;
      if (event!.error) assert.fail(`patch failed: ${event!.error.message}`);
    }
    assert.equal(final, JobState.SUCCEEDED, `states seen: ${states.join(",")}`);

    const got = await client.getPatch({ jobId: first.jobId });
    assert.equal(got.status?.state, JobState.SUCCEEDED);
    assert.equal(got.patchedModel?.storeKey, `models/${first.stepKey}`);
    assert.equal(got.edits.length, 5);
    for (const e of got.edits) assert.ok(e.leakage <= 3e-3, `${e.name} leakage ${e.leakage}`);

    // The published artifact holds the same bytes as the library writes locally.
    const manifest = await readArtifact(store, `models/${first.stepKey}`);
    assert.ok(manifest, "patched model has a manifest");
    const ck = await loadCheckpoint(localCheckpointFiles(join(FIX, "tiny-bf16")));
    const directions = await parseDirectionFile(
      new Uint8Array(await readFile(join(FIX, "directions.safetensors"))),
      {
        hidden: 64,
        layer: 1,
      },
    );
    const local = join(tmp, "local");
    const gen = patchCheckpoint(ck, buildPlan(ck, directions), await createLocalOutput(local));
    for await (const _ of gen) {
      // drain
    }
    for (const name of await readdir(local)) {
      if (name === "abliteration.json") continue;
      const remote = await collectBytes(readArtifactFile(store, `models/${first.stepKey}`, name));
      const a = createHash("sha256").update(remote).digest("hex");
      const b = createHash("sha256")
        .update(await readFile(join(local, name)))
        .digest("hex");
      assert.equal(a, b, `${name} differs between service and library`);
    }
    const files = manifest.files.map((f) => f.name);
    assert.ok(
      files.includes("abliteration.json") && files.includes("model-00001-of-00002.safetensors"),
    );

    // The same request again: answered from the store, same key, nothing re-run.
    const second = await client.startPatch(request, { timeoutMs: 5_000 });
    assert.equal(second.cached, true);
    assert.equal(second.stepKey, first.stepKey);
    const again = await client.getPatch({ jobId: second.jobId });
    assert.equal(again.status?.state, JobState.SUCCEEDED);
    // The job record still tells the first run's story (it really ran); the answer above says cached.
    assert.equal(again.edits.length, 5);
    const manifest2 = await readArtifact(store, `models/${first.stepKey}`);
    assert.equal(manifest2?.createdAt, manifest.createdAt, "the artifact was not rewritten");

    // Bad input fails the job with a clear error instead of retrying forever.
    const bad = await client.startPatch({ ...request, directionLayer: 7 }, { timeoutMs: 5_000 });
    let badError = "";
    for await (const { event } of client.watchPatch({ jobId: bad.jobId }, { timeoutMs: 60_000 })) {
      if (event!.state === JobState.FAILED) badError = event!.error?.message ?? "";
    }
    assert.match(badError, /layer 7 is out of range 0..2/);
  } finally {
    client.close();
  }
});
