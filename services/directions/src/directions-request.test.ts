import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { presetContrastSet, publishActivations, splitContrastSet } from "@abl/refusal";
import { RpcError, SelectionPolicy, StartDirectionsRequestSchema } from "@abl/rpc";
import { createLocalStore, type ObjectStore } from "@abl/store";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { directionsJobFromRequest } from "./directions-request.ts";

describe("StartDirections validation and step keys", () => {
  let dir = "";
  let store: ObjectStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "abl-directions-req-"));
    store = createLocalStore({ root: dir, fsync: false });
    const set = presetContrastSet("agent-shell");
    const splits = splitContrastSet(set, 0);
    const row = () => new Float32Array(3 * 4);
    await publishActivations(
      store,
      "activations/a",
      { set, splits },
      { refuse: set.refuse.map(row), comply: set.comply.map(row) },
      {
        modelDigest: "sha256:m",
        promptsDigest: splits.digests.set,
        splitDigests: splits.digests,
        chatTemplate: "",
        positions: [-1],
        engine: "builtin",
        layers: 3,
        hidden: 4,
      },
    );
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const job = (init: MessageInitShape<typeof StartDirectionsRequestSchema>) =>
    directionsJobFromRequest(create(StartDirectionsRequestSchema, init), store);
  const rpc = (code: string, re: RegExp) => (e: Error) =>
    e instanceof RpcError && e.code === code && re.test(e.message);

  it("fills defaults and keys by content", async () => {
    const a = await job({ activations: { key: "activations/a" } });
    assert.equal(a.method, "mean-diff");
    assert.deepEqual(a.selection, { type: "best-auc" });
    assert.equal(a.outputKey, `directions/${a.stepKey}`);
    assert.equal((await job({ activations: { key: "activations/a/" } })).stepKey, a.stepKey);
    assert.notEqual(
      (await job({ activations: { key: "activations/a" }, seed: 2n })).stepKey,
      a.stepKey,
    );
    const ex = await job({
      activations: { key: "activations/a" },
      selection: SelectionPolicy.EXPLICIT,
      layer: 2,
    });
    assert.deepEqual(ex.selection, { type: "explicit", layer: 2 });
  });

  it("carries causal_candidates into the causal policy and the step key", async () => {
    const causal = { activations: { key: "activations/a" } };
    const plain = await job({
      ...causal,
      selection: SelectionPolicy.CAUSAL,
      model: { storeKey: "models/m" },
    });
    assert.deepEqual(plain.selection, { type: "causal" });
    // No digest named: the model is cached under the one the activations record.
    assert.equal(plain.modelDigest, "sha256:m");
    assert.equal(plain.modelKey, "models/m");
    const one = await job({
      ...causal,
      selection: SelectionPolicy.CAUSAL,
      model: { storeKey: "models/m" },
      causalCandidates: 1,
      maxKl: 0.5,
    });
    assert.deepEqual(one.selection, { type: "causal", maxKl: 0.5, candidates: 1 });
    assert.notEqual(one.stepKey, plain.stepKey);
  });

  it("rejects bad input with the reason", async () => {
    await assert.rejects(job({}), rpc("INVALID_ARGUMENT", /activations.key is required/));
    await assert.rejects(
      job({ activations: { key: "activations/none" } }),
      rpc("NOT_FOUND", /no activations artifact at activations\/none/),
    );
    await assert.rejects(
      job({ activations: { key: "activations/a" }, selection: SelectionPolicy.EXPLICIT, layer: 3 }),
      rpc("INVALID_ARGUMENT", /layer 3 is out of range: the activations have layers 0..2/),
    );
    await assert.rejects(
      job({ activations: { key: "activations/a" }, selection: SelectionPolicy.EXPLICIT }),
      rpc("INVALID_ARGUMENT", /EXPLICIT needs layer/),
    );
    await assert.rejects(
      job({ activations: { key: "activations/a" }, selection: SelectionPolicy.CAUSAL }),
      rpc("INVALID_ARGUMENT", /CAUSAL needs model.store_key/),
    );
    await assert.rejects(
      job({ activations: { key: "activations/a" }, model: { digest: "sha256:x" } }),
      rpc("FAILED_PRECONDITION", /captured from model sha256:m, not the named sha256:x/),
    );
    await assert.rejects(
      job({
        activations: { key: "activations/a" },
        selection: SelectionPolicy.CAUSAL,
        model: { storeKey: "models/m" },
        causalCandidates: 2,
      }),
      rpc(
        "INVALID_ARGUMENT",
        /causal_candidates 2 exceeds the 1 candidate layers of 3 residual layers/,
      ),
    );
    await assert.rejects(
      job({ activations: { key: "activations/a" }, causalCandidates: 3 }),
      rpc(
        "INVALID_ARGUMENT",
        /causal_candidates \(3\) applies only to SELECTION_POLICY_CAUSAL, not best-auc/,
      ),
    );
  });
});
