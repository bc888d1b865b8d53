import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CaptureEngine, RpcError, StartCaptureRequestSchema } from "@abl/rpc";
import { createLocalStore, type ObjectStore } from "@abl/store";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { captureJobFromRequest } from "./capture-request.ts";

describe("StartCapture validation and step keys", () => {
  let dir = "";
  let store: ObjectStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "abl-capture-req-"));
    store = createLocalStore({ root: dir, fsync: false });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const base: MessageInitShape<typeof StartCaptureRequestSchema> = {
    model: { digest: "sha256:m", storeKey: "models/m" },
    contrastSet: { case: "contrastSpec", value: { preset: "agent-shell" } },
  };
  const job = (init: MessageInitShape<typeof StartCaptureRequestSchema>) =>
    captureJobFromRequest(create(StartCaptureRequestSchema, init), store, {});
  const invalid = (re: RegExp) => (e: Error) =>
    e instanceof RpcError && e.code === "INVALID_ARGUMENT" && re.test(e.message);

  it("equal requests get equal keys; seed, engine and model change them", async () => {
    const a = await job(base);
    const b = await job(base);
    assert.equal(a.stepKey, b.stepKey);
    assert.equal(a.outputKey, `activations/${a.stepKey}`);
    assert.equal(a.engine, "builtin");
    const seeded = await job({
      ...base,
      contrastSet: { case: "contrastSpec", value: { preset: "agent-shell", seed: 5n } },
    });
    assert.notEqual(seeded.stepKey, a.stepKey);
    const tf = await job({ ...base, engine: CaptureEngine.TRANSFORMERS });
    assert.notEqual(tf.stepKey, a.stepKey);
    const other = await job({ ...base, model: { digest: "sha256:n", storeKey: "models/m" } });
    assert.notEqual(other.stepKey, a.stepKey);
    assert.equal(a.filter, false);
    const filtered = await job({ ...base, filter: true });
    assert.equal(filtered.filter, true);
    assert.notEqual(filtered.stepKey, a.stepKey, "filtered activations are another artifact");
  });

  it("rejects bad input with the reason", async () => {
    await assert.rejects(
      job({ ...base, model: { storeKey: "models/m" } }),
      invalid(/model.digest is required/),
    );
    await assert.rejects(
      job({ ...base, positions: [-1, -2] }),
      invalid(/positions \[-1, -2\] are not supported/),
    );
    await assert.rejects(
      job({ ...base, contrastSet: { case: "contrastSpec", value: { preset: "nope" } } }),
      invalid(/preset "nope"/),
    );
    await assert.rejects(job({ model: base.model }), invalid(/contrast_set is required/));
    await assert.rejects(
      job({
        ...base,
        contrastSet: {
          case: "contrastSpec",
          value: { specText: "refuse: [a.txt]\ncomply: [b.txt]" },
        },
      }),
      invalid(/"a.txt" is a local path/),
    );
    await assert.rejects(
      job({ ...base, batchSize: 5000 }),
      invalid(/batch_size must be 1..4096, got 5000/),
    );
    await assert.rejects(
      job({ ...base, filter: true, engine: CaptureEngine.TRANSFORMERS }),
      invalid(/filter generates with the built-in engine/),
    );
  });
});
