/**
 * Refusal directions end to end on the real model: SmolLM2-135M-Instruct (from the GGUF that
 * scripts/install-deps.sh caches) with the agent-shell set. The capture, directions and patcher
 * services run as processes over real NATS and MinIO: capture → directions (best AUC) → patch at
 * the selected layer → refusal and KL evaluation of base vs patched, printed for the report.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { convertGgufToHf } from "@abl/checkpoint";
import { loadModel, loadTokenizer } from "@abl/engine";
import {
  type ContrastPrompt,
  createEngineEndpoint,
  createMarkerJudge,
  createModelCache,
  evaluateRefusal,
  filterByBehaviour,
  modelFolderDigest,
  presetContrastSet,
  readActivations,
  readDirections,
  splitContrastSet,
} from "@abl/refusal";
import {
  CaptureEngine,
  CaptureService,
  createClient,
  DirectionsService,
  JobState,
  PatcherService,
  PatchMethod,
  RpcError,
  SelectionPolicy,
} from "@abl/rpc";
import { createS3Store, type ObjectStore, publishArtifact } from "@abl/store";
import { freePort, type NatsServer, type S3Server, startNats, startS3 } from "./support/servers.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

async function smollm2Path(): Promise<string> {
  const fromEnv = process.env.ABL_SMOLLM2_GGUF;
  if (fromEnv) return fromEnv;
  const cache = process.env.ABL_CACHE_DIR ?? join(homedir(), ".cache", "abl");
  const recorded = (await readFile(join(cache, "smollm2.path"), "utf8").catch(() => "")).trim();
  if (!recorded)
    throw new Error(
      `SmolLM2 GGUF not found: set ABL_SMOLLM2_GGUF or run scripts/install-deps.sh (writes ${cache}/smollm2.path)`,
    );
  return recorded;
}

let nats: NatsServer;
let s3: S3Server;
let store: ObjectStore;
let tmp: string;
let modelDir: string;
let modelDigest: string;
const services: { name: string; child: ChildProcess; port: number; log: () => string }[] = [];

async function startService(name: string): Promise<number> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, `services/${name}/src/main.ts`)],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        NATS_URL: nats.url,
        ABL_STORE: "s3://abl-refusal-e2e",
        ABL_S3_ENDPOINT: s3.endpoint,
        ABL_S3_ACCESS_KEY: s3.accessKey,
        ABL_S3_SECRET_KEY: s3.secretKey,
        ABL_MODEL_CACHE: join(tmp, `cache-${name}`),
        GRPC_PORT: String(port),
        METRICS_PORT: String(await freePort()),
        LOG_LEVEL: "warn",
      },
    },
  );
  let log = "";
  const keep = (d: Buffer) => {
    log = (log + d.toString()).slice(-8000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  services.push({ name, child, port, log: () => log });
  return port;
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "abl-refusal-e2e-"));
  nats = await startNats();
  s3 = await startS3();
  store = createS3Store({
    endpoint: s3.endpoint,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    bucket: "abl-refusal-e2e",
  });
  modelDir = join(tmp, "smollm2");
  await convertGgufToHf(await smollm2Path(), modelDir);
  modelDigest = await modelFolderDigest(modelDir);
  const files = [];
  for (const name of await readdir(modelDir))
    files.push({ name, body: new Uint8Array(await readFile(join(modelDir, name))) });
  await publishArtifact(store, "models/smollm2", files, { kind: "model", digest: modelDigest });
  for (const s of ["capture", "directions", "patcher"]) await startService(s);
});

after(async () => {
  for (const s of services) {
    if (s.child.exitCode !== null) continue;
    const exited = new Promise((r) => s.child.once("exit", r));
    s.child.kill("SIGTERM");
    const t = setTimeout(() => s.child.kill("SIGKILL"), 10_000);
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
      if (Date.now() > deadline || (err instanceof RpcError && err.code !== "UNAVAILABLE"))
        throw new Error(`${what} failed`, { cause: err });
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * Polls a Get call until the job ends. A service whose event loop is busy loading a model can
 * miss a NATS KV deadline for a moment; such transient statuses are polled through.
 */
async function until(
  what: string,
  get: () => Promise<{
    status?: { state: JobState; error?: { message: string } | undefined } | undefined;
  }>,
): Promise<void> {
  for (;;) {
    const dead = services.find((s) => s.child.exitCode !== null);
    if (dead)
      assert.fail(
        `${what}: the ${dead.name} service exited with ${dead.child.exitCode}:\n${dead.log()}`,
      );
    const r = await get().catch((err) => {
      if (
        err instanceof RpcError &&
        (err.code === "DEADLINE_EXCEEDED" || err.code === "UNAVAILABLE")
      )
        return undefined;
      throw err;
    });
    const st = r?.status?.state;
    if (st === JobState.SUCCEEDED) return;
    if (st === JobState.FAILED || st === JobState.CANCELLED) {
      assert.fail(
        `${what} ended ${st}: ${r?.status?.error?.message}\n${services.map((s) => `${s.name}: ${s.log()}`).join("\n")}`,
      );
    }
    await new Promise((res) => setTimeout(res, 500));
  }
}

function port(name: string): number {
  return (services.find((s) => s.name === name) as { port: number }).port;
}

test("agent-shell on SmolLM2-135M-Instruct: capture → directions → patch → eval over NATS and MinIO", async () => {
  const capture = createClient(CaptureService, { address: `127.0.0.1:${port("capture")}` });
  const directions = createClient(DirectionsService, {
    address: `127.0.0.1:${port("directions")}`,
  });
  const patcher = createClient(PatcherService, { address: `127.0.0.1:${port("patcher")}` });
  try {
    const model = { digest: modelDigest, storeKey: "models/smollm2" };
    const req = {
      model,
      contrastSet: { case: "contrastSpec" as const, value: { preset: "agent-shell" } },
    };
    const started = await withRetry(
      () => capture.startCapture(req, { timeoutMs: 30_000 }),
      "StartCapture",
    );
    assert.equal(started.cached, false);
    await until("capture", () => capture.getCapture({ jobId: started.jobId }));
    const got = await capture.getCapture({ jobId: started.jobId });
    assert.equal(got.numLayers, 31);
    assert.equal(got.hiddenSize, 576);
    assert.ok(got.numRefusePrompts >= 50 && got.numComplyPrompts === got.numRefusePrompts);
    const activations = got.activations?.key as string;
    assert.equal(
      (await capture.startCapture(req, { timeoutMs: 30_000 })).cached,
      true,
      "same request is served from the store",
    );

    // Bad input is refused at Start with the reason.
    await assert.rejects(
      capture.startCapture({ ...req, positions: [-2] }, { timeoutMs: 30_000 }),
      (e: RpcError) =>
        e.code === "INVALID_ARGUMENT" && /positions \[-2\] are not supported/.test(e.message),
    );
    await assert.rejects(
      directions.startDirections(
        { activations: { key: activations }, selection: SelectionPolicy.EXPLICIT, layer: 31 },
        { timeoutMs: 30_000 },
      ),
      (e: RpcError) =>
        e.code === "INVALID_ARGUMENT" &&
        /layer 31 is out of range: the activations have layers 0..30/.test(e.message),
    );
    await assert.rejects(
      directions.startDirections(
        { activations: { key: activations }, model: { digest: "sha256:other" } },
        { timeoutMs: 30_000 },
      ),
      (e: RpcError) =>
        e.code === "FAILED_PRECONDITION" &&
        /captured from model sha256:[0-9a-f]+, not the named sha256:other/.test(e.message),
    );

    const ds = await withRetry(
      () =>
        directions.startDirections(
          {
            activations: { key: activations },
            model: { digest: modelDigest },
            selection: SelectionPolicy.BEST_AUC,
            seed: 1n,
          },
          { timeoutMs: 30_000 },
        ),
      "StartDirections",
    );
    await until("directions", () => directions.getDirections({ jobId: ds.jobId }));
    const dres = await directions.getDirections({ jobId: ds.jobId });
    const layer = dres.selectedLayer;
    assert.equal(dres.scores.length, 31);
    assert.ok(
      layer >= 1 && layer <= 24,
      `selected layer ${layer} is outside the candidate range 1..24`,
    );
    const sel = dres.scores[layer];
    console.log(
      `selected layer ${layer}: AUC ${sel?.auc.toFixed(3)} [${sel?.aucCiLow.toFixed(3)}, ${sel?.aucCiHigh.toFixed(3)}], Cohen's d ${sel?.cohensD.toFixed(2)}`,
    );

    const ps = await withRetry(
      () =>
        patcher.startPatch(
          {
            model,
            direction: { key: dres.directions?.key as string },
            directionLayer: layer,
            method: PatchMethod.PROJECT,
          },
          { timeoutMs: 30_000 },
        ),
      "StartPatch",
    );
    await until("patch", () => patcher.getPatch({ jobId: ps.jobId }));
    const patched = (await patcher.getPatch({ jobId: ps.jobId })).patchedModel;
    const variant = await createModelCache({ store, dir: join(tmp, "variant-cache") }).acquire(
      patched?.storeKey as string,
      patched?.digest || "variant",
    );
    const variantDir = variant.dir;

    // Evaluate on the eval split the services recorded with the activations.
    const acts = await readActivations(store, activations);
    const pick = (b: "refuse" | "comply") =>
      acts.prompts.splits.indices.eval[b].map((i) => acts.prompts.set[b][i] as ContrastPrompt);
    const tokenizer = await loadTokenizer(modelDir);
    const [baseEngine, variantEngine] = [await loadModel(modelDir), await loadModel(variantDir)];
    try {
      const base = createEngineEndpoint(baseEngine, tokenizer, "base");
      const variant = createEngineEndpoint(variantEngine, tokenizer, "variant");
      const judges = [createMarkerJudge()];
      const before = await evaluateRefusal({
        variant: base,
        refuse: pick("refuse"),
        judges,
        maxTokens: 100,
      });
      const afterEval = await evaluateRefusal({
        variant,
        base,
        refuse: pick("refuse"),
        comply: pick("comply"),
        judges,
        maxTokens: 100,
        klTokens: 8,
      });
      const b = before.refusal.markers;
      const a = afterEval.refusal.markers;
      assert.ok(a && b);
      console.log(
        `refusal before: ${b.count}/${b.n} = ${b.rate.toFixed(3)} [${b.low.toFixed(3)}, ${b.high.toFixed(3)}]`,
      );
      console.log(
        `refusal after:  ${a.count}/${a.n} = ${a.rate.toFixed(3)} [${a.low.toFixed(3)}, ${a.high.toFixed(3)}]`,
      );
      console.log(
        `KL(base ‖ patched) on comply prompts: ${afterEval.kl?.mean.toFixed(4)} over ${afterEval.kl?.prompts} prompts, ${afterEval.kl?.meanPositions.toFixed(1)} positions`,
      );
      assert.equal(a.n, pick("refuse").length);
      assert.ok(a.n >= 10);
      assert.ok(
        afterEval.kl && Number.isFinite(afterEval.kl.mean) && afterEval.kl.mean > 0,
        "the patch changed the model's distribution",
      );
    } finally {
      await baseEngine.dispose();
      await variantEngine.dispose();
    }
  } finally {
    capture.close();
    directions.close();
    patcher.close();
  }
});

/**
 * agent-shell tasks for the filter: SmolLM2-135M refuses the bare form of tasks 1, 5, 19 and 28
 * ("as a text-based AI, I don't have the ability…") and answers 0 and 2, so the filter has
 * something to drop; the test recomputes the expectation rather than trusting this list. Few
 * prompts, since the filter generates 100 tokens for each.
 */
const FILTER_TASKS = [0, 1, 2, 5, 19, 28];

test("StartCapture.filter and StartDirections.causal_candidates over NATS and MinIO", async () => {
  const capture = createClient(CaptureService, { address: `127.0.0.1:${port("capture")}` });
  const directions = createClient(DirectionsService, {
    address: `127.0.0.1:${port("directions")}`,
  });
  try {
    const model = { digest: modelDigest, storeKey: "models/smollm2" };
    const full = presetContrastSet("agent-shell");
    const pick = (ps: readonly ContrastPrompt[]) =>
      FILTER_TASKS.map((i) => ps[i] as ContrastPrompt);
    const set = {
      name: "agent-shell-filter",
      refuse: pick(full.refuse),
      comply: pick(full.comply),
    };
    // Equal thirds, so three kept tasks still fill fit, select and eval.
    const splits = splitContrastSet(set, 0, { fit: 0.34, select: 0.33, eval: 0.33 });
    await store.put(
      "contrast/e2e-filter/prompts.json",
      new TextEncoder().encode(JSON.stringify({ set, splits })),
    );
    const req = {
      model,
      contrastSet: {
        case: "contrastArtifact" as const,
        value: { key: "contrast/e2e-filter/prompts.json" },
      },
      filter: true,
    };
    await assert.rejects(
      withRetry(
        () =>
          capture.startCapture(
            { ...req, engine: CaptureEngine.TRANSFORMERS },
            { timeoutMs: 30_000 },
          ),
        "StartCapture",
      ),
      (e: Error) =>
        e.cause instanceof RpcError &&
        e.cause.code === "INVALID_ARGUMENT" &&
        /filter generates with the built-in engine/.test(e.cause.message),
    );
    const unfiltered = await capture.startCapture({ ...req, filter: false }, { timeoutMs: 30_000 });
    const started = await capture.startCapture(req, { timeoutMs: 30_000 });
    assert.notEqual(started.stepKey, unfiltered.stepKey, "filtering is part of the step key");
    await until("filtered capture", () => capture.getCapture({ jobId: started.jobId }));
    const got = await capture.getCapture({ jobId: started.jobId });
    const activations = got.activations?.key as string;
    const acts = await readActivations(store, activations);

    // The same filter run here on the same prompts decides what the service had to keep.
    const [engine, tokenizer] = [await loadModel(modelDir), await loadTokenizer(modelDir)];
    let expected: { refuse: ContrastPrompt[]; comply: ContrastPrompt[] };
    try {
      expected = await filterByBehaviour(set.refuse, set.comply, {
        base: createEngineEndpoint(engine, tokenizer, "base"),
        judge: createMarkerJudge(),
      });
    } finally {
      await engine.dispose();
    }
    console.log(
      `filter kept ${expected.refuse.length}/${set.refuse.length} refuse and ${expected.comply.length}/${set.comply.length} comply prompts`,
    );
    const ids = (ps: readonly ContrastPrompt[]) => ps.map((p) => p.id);
    assert.deepEqual(ids(acts.prompts.set.refuse), ids(expected.refuse));
    assert.deepEqual(ids(acts.prompts.set.comply), ids(expected.comply));
    assert.equal(got.numRefusePrompts, expected.refuse.length);
    assert.equal(got.numComplyPrompts, expected.comply.length);

    // causal_candidates: checked against the activations' layers, only with the causal policy.
    await assert.rejects(
      directions.startDirections(
        {
          activations: { key: activations },
          model,
          selection: SelectionPolicy.CAUSAL,
          causalCandidates: 99,
        },
        { timeoutMs: 30_000 },
      ),
      (e: RpcError) =>
        e.code === "INVALID_ARGUMENT" &&
        /causal_candidates 99 exceeds the 24 candidate layers of 31 residual layers/.test(
          e.message,
        ),
    );
    await assert.rejects(
      directions.startDirections(
        { activations: { key: activations }, causalCandidates: 2 },
        { timeoutMs: 30_000 },
      ),
      (e: RpcError) =>
        e.code === "INVALID_ARGUMENT" &&
        /causal_candidates \(2\) applies only to SELECTION_POLICY_CAUSAL/.test(e.message),
    );
    const ds = await directions.startDirections(
      {
        activations: { key: activations },
        model,
        selection: SelectionPolicy.CAUSAL,
        causalCandidates: 1,
        // A 135M model's KL under ablation is not what this checks; any finite value passes.
        maxKl: 1e6,
      },
      { timeoutMs: 30_000 },
    );
    await until("causal directions", () => directions.getDirections({ jobId: ds.jobId }));
    const dres = await directions.getDirections({ jobId: ds.jobId });
    const { meta } = await readDirections(store, dres.directions?.key as string);
    assert.equal(meta.selection.policy, "causal");
    assert.equal(meta.selection.probes.length, 1, "exactly one candidate layer was probed");
    assert.equal(dres.selectedLayer, meta.selection.probes[0]?.layer);
    console.log(
      `causal (1 candidate): layer ${dres.selectedLayer}, refusal ${meta.selection.probes[0]?.refusalRate.toFixed(3)}, KL ${meta.selection.probes[0]?.kl.toFixed(4)}`,
    );
  } finally {
    capture.close();
    directions.close();
  }
});
