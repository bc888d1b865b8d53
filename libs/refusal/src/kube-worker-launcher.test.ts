import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { KubeLauncher } from "@abl/kube";
import type { V1Job } from "@kubernetes/client-node";
import { ActivationsError } from "./errors.ts";
import { createKubeWorkerLauncher } from "./kube-worker-launcher.ts";

function fakeKube(
  result: { succeeded: boolean; reason: string; logs: string },
  seen: V1Job[],
): KubeLauncher {
  return {
    namespace: "abl",
    runJob: async (job: V1Job) => {
      seen.push(job);
      return result;
    },
  } as unknown as KubeLauncher;
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of it) out.push(l);
  return out;
}

describe("Kubernetes worker launcher", () => {
  it("passes the job in the environment of a GPU Job and relays the log lines", async () => {
    const seen: V1Job[] = [];
    const launch = createKubeWorkerLauncher({
      kube: fakeKube({ succeeded: true, reason: "Complete", logs: '{"type":"done"}\n' }, seen),
      image: "abl/worker:1",
      name: "k1",
    });
    const lines = await collect(launch({ buckets: { refuse: [] } }));
    assert.deepEqual(lines, ['{"type":"done"}']);
    const c = seen[0]?.spec?.template.spec?.containers[0];
    assert.equal(c?.image, "abl/worker:1");
    assert.deepEqual(c?.command, ["python3", "/app/capture_worker.py"]);
    assert.equal(
      c?.env?.find((e) => e.name === "ABL_CAPTURE_JOB")?.value,
      '{"buckets":{"refuse":[]}}',
    );
    assert.equal(seen[0]?.metadata?.namespace, "abl");
  });

  it("a failed Job is an error after its lines are relayed", async () => {
    const launch = createKubeWorkerLauncher({
      kube: fakeKube(
        {
          succeeded: false,
          reason: "BackoffLimitExceeded",
          logs: '{"type":"error","message":"OOM"}',
        },
        [],
      ),
      image: "i",
      name: "k2",
    });
    const lines: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const l of launch({})) lines.push(l);
      })(),
      (e: Error) =>
        e instanceof ActivationsError && /capture Job failed: BackoffLimitExceeded/.test(e.message),
    );
    assert.deepEqual(lines, ['{"type":"error","message":"OOM"}']);
  });
});
