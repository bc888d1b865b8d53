import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { CaptureProgress } from "./capture-job.ts";
import { ActivationsError } from "./errors.ts";
import { createLocalWorkerLauncher, createTransformersCapturer } from "./transformers-capturer.ts";

// A stdlib-only stand-in that speaks the worker protocol (the real worker needs torch and is
// checked by worker/test_capture_worker.py): residual value = prompt index + layer / 10.
const STUB = String.raw`
import json, os, struct, sys
job = json.loads(sys.stdin.read())
print("some library banner")
(bucket, convs), = job["buckets"].items()
if any("explode" in m["content"] for c in convs for m in c):
    print(json.dumps({"type": "error", "message": "ValueError: prompt 0 has 9000 tokens, beyond the model's 8192-position context"}))
    sys.exit(1)
L, H = 3, 4
vals = [p + l / 10 for p in range(len(convs)) for l in range(L) for _ in range(H)]
data = struct.pack("<%df" % len(vals), *vals)
hdr = json.dumps({"residuals": {"dtype": "F32", "shape": [len(convs), L, H], "data_offsets": [0, len(data)]}}).encode()
hdr += b" " * ((8 - len(hdr) % 8) % 8)
out = job["output"]["dir"]
open(os.path.join(out, bucket + ".safetensors"), "wb").write(struct.pack("<Q", len(hdr)) + hdr + data)
print(json.dumps({"type": "progress", "bucket": bucket, "done": len(convs), "total": len(convs)}))
print(json.dumps({"type": "done", "layers": L, "hidden": H, "chat_template": "tmpl-from-worker"}))
`;

describe("transformers capturer (worker protocol)", () => {
  let dir = "";
  let script = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "abl-worker-stub-"));
    script = join(dir, "stub.py");
    await writeFile(script, STUB);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("runs the worker, relays progress and reads its residuals", async () => {
    const c = createTransformersCapturer({
      model: { dir: "/models/x" },
      modelDigest: "sha256:m",
      launcher: createLocalWorkerLauncher({ script }),
    });
    const prompts = [0, 1].map((i) => ({ id: `p${i}`, group: `p${i}`, user: `task ${i}` }));
    const it = c.capture("refuse", prompts);
    const events: CaptureProgress[] = [];
    let r = await it.next();
    while (!r.done) {
      events.push(r.value);
      r = await it.next();
    }
    assert.deepEqual(events, [{ type: "progress", bucket: "refuse", done: 2, total: 2 }]);
    assert.equal(r.value.layers, 3);
    assert.equal(r.value.rows.length, 2);
    assert.ok(Math.abs((r.value.rows[1]?.[4] as number) - 1.1) < 1e-6);
    assert.equal(c.chatTemplate, "tmpl-from-worker");
  });

  it("turns a worker error into a clear ActivationsError", async () => {
    const c = createTransformersCapturer({
      model: { dir: "/m" },
      modelDigest: "d",
      launcher: createLocalWorkerLauncher({ script }),
    });
    const it = c.capture("refuse", [{ id: "a", group: "a", user: "explode" }]);
    await assert.rejects(
      (async () => {
        for (let r = await it.next(); !r.done; r = await it.next());
      })(),
      (e: Error) =>
        e instanceof ActivationsError &&
        /capture worker failed: ValueError: prompt 0 has 9000 tokens, beyond the model's 8192-position context/.test(
          e.message,
        ),
    );
  });
});
