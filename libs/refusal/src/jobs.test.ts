import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLocalStore, type ObjectStore } from "@abl/store";
import { readActivations } from "./activations-artifact.ts";
import {
  type CapturedBatch,
  type CaptureProgress,
  type ResidualCapturer,
  runCapture,
} from "./capture-job.ts";
import type { Bucket, ContrastPrompt } from "./contrast-set.ts";
import { readDirections } from "./directions-artifact.ts";
import { runDirections } from "./directions-job.ts";
import { ActivationsError } from "./errors.ts";
import { presetContrastSet } from "./presets/index.ts";
import { createRandom } from "./random.ts";
import { splitContrastSet } from "./splits.ts";

const LAYERS = 7;
const HIDDEN = 24;
const PLANTED_LAYER = 3;

/** A capturer with a known refusal direction: refuse rows get +2·e₀ at layers ≥ PLANTED_LAYER. */
function syntheticCapturer(): ResidualCapturer {
  return {
    engine: "builtin",
    modelDigest: "sha256:model-a",
    chatTemplate: "{{ messages }}",
    async *capture(
      bucket: Bucket,
      prompts: readonly ContrastPrompt[],
    ): AsyncGenerator<CaptureProgress, CapturedBatch> {
      const rand = createRandom(bucket === "refuse" ? 1 : 2);
      const rows = prompts.map(() => {
        const r = new Float32Array(LAYERS * HIDDEN);
        for (let i = 0; i < r.length; i++) r[i] = rand() - 0.5;
        if (bucket === "refuse")
          for (let l = PLANTED_LAYER; l < LAYERS; l++)
            r[l * HIDDEN] = (r[l * HIDDEN] as number) + 2;
        return r;
      });
      yield { type: "progress", bucket, done: prompts.length, total: prompts.length };
      return { layers: LAYERS, hidden: HIDDEN, rows };
    },
  };
}

async function drain<E, R>(g: AsyncGenerator<E, R>, events: E[] = []): Promise<R> {
  for (;;) {
    const r = await g.next();
    if (r.done) return r.value;
    events.push(r.value);
  }
}

describe("capture and directions jobs over an object store", () => {
  let dir = "";
  let store: ObjectStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "abl-refusal-jobs-"));
    store = createLocalStore({ root: dir, fsync: false });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("captures, ranks, selects the planted layer and round-trips the artifacts", async () => {
    const set = presetContrastSet("agent-shell");
    const splits = splitContrastSet(set, 1);
    const events: CaptureProgress[] = [];
    const meta = await drain(
      runCapture({ store, prefix: "activations/k1", set, splits, capturer: syntheticCapturer() }),
      events,
    );
    assert.equal(meta.layers, LAYERS);
    assert.deepEqual(meta.prompts, { refuse: set.refuse.length, comply: set.comply.length });
    assert.deepEqual(
      events.map((e) => e.bucket),
      ["refuse", "comply"],
    );
    const acts = await readActivations(store, "activations/k1");
    assert.equal(acts.refuse.prompts, set.refuse.length);
    assert.equal(acts.prompts.splits.digests.fit, splits.digests.fit);

    const dmeta = await drain(
      runDirections({
        store,
        activations: "activations/k1",
        prefix: "directions/k1",
        selection: { type: "best-auc" },
        resamples: 50,
        seed: 3,
      }),
    );
    const ranking = dmeta.ranking;
    assert.equal(ranking.length, LAYERS);
    assert.ok(
      (ranking[PLANTED_LAYER]?.auc ?? 0) > 0.95,
      `planted layer AUC ${ranking[PLANTED_LAYER]?.auc}`,
    );
    assert.ok((ranking[1]?.auc ?? 1) < 0.9, `layer 1 has no signal, AUC ${ranking[1]?.auc}`);
    // Layers 3 and 4 both carry the planted signal; either is a correct choice, nothing earlier.
    assert.ok(
      dmeta.selection.layer >= PLANTED_LAYER && dmeta.selection.layer <= 4,
      `selected ${dmeta.selection.layer}`,
    );
    const { directions } = await readDirections(store, "directions/k1");
    assert.equal(directions.layers, LAYERS);
    assert.ok(
      Math.abs((directions.data[PLANTED_LAYER * HIDDEN] as number) - 1) < 0.1,
      "direction points along e₀",
    );
    const csv = new TextDecoder().decode(await store.getBytes("directions/k1/ranking.csv"));
    assert.equal(csv.trimEnd().split("\n").length, LAYERS + 1);

    const again = await drain(
      runDirections({
        store,
        activations: "activations/k1",
        prefix: "directions/k2",
        selection: { type: "explicit", layer: 2 },
        reference: "directions/k1",
        resamples: 20,
      }),
    );
    assert.equal(again.selection.layer, 2);
    assert.ok(Math.abs((again.ranking[2]?.cosReference ?? 0) - 1) < 1e-6);
  });

  it("rejects activations of another model, out-of-range layers, and leaves nothing half-written", async () => {
    await assert.rejects(
      drain(
        runDirections({
          store,
          activations: "activations/k1",
          prefix: "directions/bad",
          selection: { type: "best-auc" },
          expectModelDigest: "sha256:model-b",
        }),
      ),
      (e: Error) =>
        e instanceof ActivationsError &&
        /captured from model sha256:model-a, not the named sha256:model-b/.test(e.message),
    );
    await assert.rejects(
      drain(
        runDirections({
          store,
          activations: "activations/k1",
          prefix: "directions/bad",
          selection: { type: "explicit", layer: 7 },
          resamples: 5,
        }),
      ),
      /layer 7 is out of range: residuals have layers 0..6/,
    );
    assert.equal(await store.stat("directions/bad/manifest.json"), undefined);
    await assert.rejects(
      drain(
        runDirections({
          store,
          activations: "activations/none",
          prefix: "directions/x",
          selection: { type: "best-auc" },
        }),
      ),
      /no activations artifact at activations\/none/,
    );
  });

  it("an empty bucket fails before anything is written", async () => {
    const set = {
      name: "empty",
      refuse: [] as ContrastPrompt[],
      comply: presetContrastSet("agent-shell").comply,
    };
    const splits = splitContrastSet(presetContrastSet("agent-shell"), 0);
    await assert.rejects(
      drain(
        runCapture({ store, prefix: "activations/e", set, splits, capturer: syntheticCapturer() }),
      ),
      /the refuse bucket of "empty" is empty/,
    );
    assert.equal(await store.stat("activations/e/manifest.json"), undefined);
  });
});
