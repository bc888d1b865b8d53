import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { buildCaptureJob } from "./capture-job.ts";
import { podReadiness } from "./conditions.ts";
import { KubeError, KubeTimeoutError, KubeWorkloadError } from "./errors.ts";
import { type FakeKubeApi, startFakeKubeApi } from "./fake-api-server.ts";
import { createKubeLauncher, type KubeLauncher } from "./launcher.ts";
import { buildSglangObjects } from "./sglang.ts";
import { buildTaskPod } from "./task-pod.ts";

let api: FakeKubeApi;
let launcher: KubeLauncher;
const NS = "abl";

before(async () => {
  api = await startFakeKubeApi();
  launcher = createKubeLauncher({ kubeConfig: api.kubeConfig(), namespace: NS, retryDelayMs: 0 });
});
after(async () => {
  await api.close();
});

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}
const readyPod = (o: { status?: unknown }) => {
  o.status = { phase: "Running", conditions: [{ type: "Ready", status: "True" }] };
};
const pod = (name: string) =>
  buildTaskPod({ name, namespace: NS, image: "busybox:1.36", ids: { trial: name } });

test("task pod: created, waited for through the watch, logs read, deleted on close", async () => {
  api.onCreate = undefined;
  const p = pod("p1");
  const done = launcher.startTaskPod(p, { timeoutMs: 10_000 });
  await until(() => api.openWatches() > 0);
  api.update("Pod", NS, p.metadata!.name!, readyPod);
  const running = await done;
  api.setLog(NS, running.name, "hello from the task\n");
  assert.equal(await running.logs(), "hello from the task\n");
  await running.close();
  assert.equal(api.get("Pod", NS, running.name), undefined);
  const watches = api.requests.filter((r) => r.query.watch === "true" && r.path.endsWith("/pods"));
  assert.ok(watches.length >= 1);
  assert.equal(watches[0]!.query.fieldSelector, `metadata.name=${running.name}`);
  assert.ok(
    Number(watches[0]!.query.resourceVersion) > 0,
    "watch starts from the list's resourceVersion",
  );
  assert.ok(
    api.requests.some((r) => r.method === "DELETE" && r.path.endsWith(`/pods/${running.name}`)),
  );
});

test("watch closed by the server: re-watch from the last seen resourceVersion", async () => {
  api.onCreate = undefined;
  const details: string[] = [];
  const watching = createKubeLauncher({
    kubeConfig: api.kubeConfig(),
    namespace: NS,
    retryDelayMs: 0,
    logger: {
      info: (o) => details.push(String((o as { detail?: string }).detail)),
      warn: () => {},
    },
  });
  const p = pod("p2");
  const name = p.metadata!.name!;
  const done = watching.startTaskPod(p, { timeoutMs: 10_000 });
  await until(() => api.openWatches() > 0);
  api.update("Pod", NS, name, (o) => {
    o.status = {
      phase: "Pending",
      conditions: [{ type: "Ready", status: "False", reason: "ContainersNotReady" }],
    };
  });
  const seenRv = api.get("Pod", NS, name)!.metadata!.resourceVersion as string;
  // The launcher has seen the event once it reports the new state.
  await until(() => details.includes("phase Pending, ContainersNotReady"));
  const before = api.requests.filter((r) => r.query.watch === "true").length;
  api.closeWatches();
  await until(
    () =>
      api.openWatches() > 0 && api.requests.filter((r) => r.query.watch === "true").length > before,
  );
  const rewatch = api.requests.filter((r) => r.query.watch === "true").at(-1)!;
  assert.equal(rewatch.query.resourceVersion, seenRv);
  api.update("Pod", NS, name, readyPod);
  const running = await done;
  await running.close();
});

test("410 Gone: the launcher re-lists and still sees the pod become ready", async () => {
  api.onCreate = undefined;
  const p = pod("p3");
  const name = p.metadata!.name!;
  const listsBefore = api.requests.filter(
    (r) => r.method === "GET" && r.path.endsWith("/pods") && !r.query.watch,
  ).length;
  const done = launcher.startTaskPod(p, { timeoutMs: 10_000 });
  await until(() => api.openWatches() > 0);
  // Another object's change moves the server's resourceVersion past the one the watch holds.
  const other = pod("p3-other");
  await launcher.create("Pod", other);
  api.expireHistory();
  api.closeWatches();
  const lists = () =>
    api.requests.filter((r) => r.method === "GET" && r.path.endsWith("/pods") && !r.query.watch)
      .length;
  await until(() => lists() >= listsBefore + 2 && api.openWatches() > 0);
  api.update("Pod", NS, name, readyPod);
  const running = await done;
  await running.close();
  await launcher.delete("Pod", other.metadata!.name!);
  assert.ok(api.goneResponses() >= 1, "the re-watch from the old resourceVersion got 410");
});

test("image pull failure: KubeWorkloadError names the reason, and the pod is deleted", async () => {
  api.onCreate = (kind, obj) => {
    if (kind !== "Pod") return;
    setTimeout(
      () =>
        api.update("Pod", NS, obj.metadata!.name!, (o) => {
          o.status = {
            phase: "Pending",
            containerStatuses: [
              {
                name: "task",
                state: { waiting: { reason: "ImagePullBackOff", message: "not found" } },
              },
            ],
          };
        }),
      10,
    );
  };
  const p = pod("p4");
  await assert.rejects(launcher.startTaskPod(p, { timeoutMs: 10_000 }), (err: unknown) => {
    assert.ok(err instanceof KubeWorkloadError);
    assert.match(err.message, /container task: ImagePullBackOff \(not found\)/);
    return true;
  });
  assert.equal(api.get("Pod", NS, p.metadata!.name!), undefined);
});

test("timeout and abort both clean up; timeout says what was last seen", async () => {
  api.onCreate = (kind, obj) => {
    if (kind === "Pod")
      setTimeout(() => {
        // The aborted pod may already be deleted by the time this runs.
        if (!api.get("Pod", NS, obj.metadata!.name!)) return;
        api.update("Pod", NS, obj.metadata!.name!, (o) => {
          o.status = { phase: "Pending" };
        });
      }, 5);
  };
  const p = pod("p5");
  await assert.rejects(launcher.startTaskPod(p, { timeoutMs: 300 }), (err: unknown) => {
    assert.ok(err instanceof KubeTimeoutError);
    assert.match(err.message, /not ready after 300 ms; last seen: phase Pending/);
    return true;
  });
  assert.equal(api.get("Pod", NS, p.metadata!.name!), undefined);
  const ac = new AbortController();
  const q = pod("p6");
  const done = launcher.startTaskPod(q, { timeoutMs: 10_000, signal: ac.signal });
  await until(() => api.openWatches() > 0);
  ac.abort(new Error("user interrupt"));
  await assert.rejects(done, /user interrupt/);
  assert.equal(api.get("Pod", NS, q.metadata!.name!), undefined);
  await until(() => api.openWatches() === 0);
});

test("sglang: Service + Deployment created, available after status update, both deleted on close", async () => {
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
      20,
    );
  };
  const objs = buildSglangObjects({
    name: "base",
    namespace: NS,
    servedModelName: "base",
    weights: { kind: "path", path: "/m" },
  });
  const s = await launcher.startSglang(objs, { timeoutMs: 10_000 });
  assert.equal(s.baseUrl, objs.baseUrl);
  assert.ok(api.get("Service", NS, objs.service.metadata!.name!));
  await s.close();
  assert.equal(api.get("Deployment", NS, s.deploymentName), undefined);
  assert.equal(api.get("Service", NS, objs.service.metadata!.name!), undefined);
});

test("capture Job: success and failure both return logs and delete the Job", async () => {
  for (const ok of [true, false]) {
    api.onCreate = (kind, obj) => {
      if (kind !== "Job") return;
      const jobName = obj.metadata!.name!;
      const podName = `${jobName}-x${ok ? 1 : 2}`;
      setTimeout(async () => {
        await fetch(`${api.url}/api/v1/namespaces/${NS}/pods`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ metadata: { name: podName, labels: { "job-name": jobName } } }),
        });
        api.setLog(NS, podName, ok ? "captured 36 layers\n" : "CUDA out of memory\n");
        api.update("Job", NS, jobName, (o) => {
          o.status = {
            conditions: [
              ok
                ? { type: "Complete", status: "True" }
                : {
                    type: "Failed",
                    status: "True",
                    reason: "BackoffLimitExceeded",
                    message: "Job has reached the specified backoff limit",
                  },
            ],
          };
        });
      }, 10);
    };
    const job = buildCaptureJob({
      name: `acts-${ok}`,
      namespace: NS,
      image: "w:1",
      command: ["python3"],
    });
    const r = await launcher.runJob(job, { timeoutMs: 10_000 });
    assert.equal(r.succeeded, ok);
    assert.equal(r.logs, ok ? "captured 36 layers\n" : "CUDA out of memory\n");
    if (!ok) assert.match(r.reason, /BackoffLimitExceeded/);
    assert.equal(api.get("Job", NS, job.metadata!.name!), undefined);
  }
});

test("a name collision is a clear KubeError", async () => {
  api.onCreate = undefined;
  const p = pod("p7");
  await launcher.create("Pod", p);
  await assert.rejects(launcher.create("Pod", p), (err: unknown) => {
    assert.ok(err instanceof KubeError);
    assert.match(err.message, /already exists/);
    return true;
  });
  await launcher.delete("Pod", p.metadata!.name!);
  await launcher.delete("Pod", p.metadata!.name!); // absent: not an error
  assert.equal(podReadiness({ status: { phase: "Succeeded" } } as V1Pod).state, "failed");
});
