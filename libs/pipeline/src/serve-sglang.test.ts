import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createKubeLauncher, type FakeKubeApi, startFakeKubeApi } from "@abl/kube";
import { createSglangServe } from "./serve-sglang.ts";

let api: FakeKubeApi;
const NS = "abl";
before(async () => {
  api = await startFakeKubeApi();
});
after(async () => {
  await api.close();
});

const s3 = { endpointUrl: "http://minio.abl.svc:9000", secretName: "abl-s3" };

test("one sglang server per variant, weights synced from the variant's model prefix, deleted on close", async () => {
  api.onCreate = (kind, obj) => {
    if (kind !== "Deployment") return;
    setTimeout(
      () =>
        api.update("Deployment", NS, obj.metadata!.name!, (o) => {
          o.status = {
            observedGeneration: 1,
            replicas: 1,
            updatedReplicas: 1,
            availableReplicas: 1,
          };
        }),
      10,
    );
  };
  const launcher = createKubeLauncher({
    kubeConfig: api.kubeConfig(),
    namespace: NS,
    retryDelayMs: 0,
  });
  const serve = createSglangServe({ launcher, bucket: "abl", s3, sweep: "s1" });
  const served = await serve(
    [
      { name: "base", prefix: "models/aaa" },
      { name: "abl-l5", prefix: "models/bbb" },
    ],
    new AbortController().signal,
  );
  assert.deepEqual(Object.keys(served.endpoints).sort(), ["abl-l5", "base"]);
  assert.match(served.endpoints.base!.url, /^http:\/\/sglang-s1-base\.abl\.svc:\d+\/v1$/);
  assert.equal(served.endpoints["abl-l5"]!.model, "abl-l5");
  const deployments = api.requests.filter(
    (r) => r.method === "POST" && r.path.endsWith("/deployments"),
  );
  assert.equal(deployments.length, 2);
  const bodies = deployments.map((r) => JSON.stringify(r.body));
  assert.ok(bodies.some((b) => b.includes("s3://abl/models/bbb/") && b.includes('"abl-l5"')));
  await served.close();
  const names = deployments.map((r) => (r.body as { metadata: { name: string } }).metadata.name);
  for (const n of names) assert.equal(api.get("Deployment", NS, n), undefined);
});

test("a server that fails to start: the others are deleted and the error is raised", async () => {
  api.onCreate = (kind, obj) => {
    if (kind !== "Deployment") return;
    const failing = obj.metadata!.name!.includes("bad");
    setTimeout(
      () =>
        api.update("Deployment", NS, obj.metadata!.name!, (o) => {
          o.status = failing
            ? {
                conditions: [
                  { type: "Progressing", status: "False", reason: "ProgressDeadlineExceeded" },
                ],
              }
            : { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 };
        }),
      10,
    );
  };
  const launcher = createKubeLauncher({
    kubeConfig: api.kubeConfig(),
    namespace: NS,
    retryDelayMs: 0,
  });
  const serve = createSglangServe({ launcher, bucket: "abl", s3, sweep: "s2" });
  await assert.rejects(
    serve(
      [
        { name: "good", prefix: "models/a" },
        { name: "bad", prefix: "models/b" },
      ],
      new AbortController().signal,
    ),
    /ProgressDeadlineExceeded/,
  );
  assert.equal(api.get("Deployment", NS, "sglang-s2-good"), undefined);
});
