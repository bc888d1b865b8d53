import assert from "node:assert/strict";
import { test } from "node:test";
import { buildCaptureJob } from "./capture-job.ts";
import { KubeSpecError } from "./errors.ts";
import { toDnsLabel, toLabelValue } from "./names.ts";
import { buildSglangObjects } from "./sglang.ts";
import { buildTaskPod } from "./task-pod.ts";

const s3 = { endpointUrl: "http://minio.abl.svc:9000", secretName: "abl-s3" };

test("sglang Deployment: args, probes, shm, GPUs, tolerations, init-container weight sync", () => {
  const o = buildSglangObjects({
    name: "abl-L12",
    namespace: "abl",
    servedModelName: "qwen3-4b-abl-L12",
    weights: { kind: "sync", s3Uri: "s3://abl/models/abc123", s3 },
    tensorParallel: 2,
    resources: { cpu: 8, memoryMiB: 65536 },
    shmMiB: 16384,
    ids: { sweep: "sweep-1" },
  });
  const pod = o.deployment.spec!.template.spec!;
  const c = pod.containers[0]!;
  const args = c.args!;
  const arg = (flag: string) => args[args.indexOf(flag) + 1];
  assert.equal(arg("--host"), "0.0.0.0");
  assert.equal(arg("--served-model-name"), "qwen3-4b-abl-L12");
  assert.equal(arg("--model-path"), "/models/current");
  assert.equal(arg("--tp-size"), "2");
  assert.ok(args.includes("--enable-metrics"));
  assert.equal(c.startupProbe!.httpGet!.path, "/health_generate");
  assert.ok(c.startupProbe!.periodSeconds! * c.startupProbe!.failureThreshold! >= 1800);
  assert.equal(c.readinessProbe!.httpGet!.path, "/health_generate");
  assert.equal(c.livenessProbe!.httpGet!.path, "/health");
  assert.equal(c.resources!.limits!["nvidia.com/gpu"], "2");
  assert.equal(c.resources!.requests!.memory, "65536Mi");
  const shm = pod.volumes!.find((v) => v.name === "dshm")!;
  assert.equal(shm.emptyDir!.medium, "Memory");
  assert.equal(shm.emptyDir!.sizeLimit, "16384Mi");
  assert.ok(c.volumeMounts!.some((m) => m.mountPath === "/dev/shm"));
  assert.ok(pod.tolerations!.some((t) => t.key === "nvidia.com/gpu"));
  const init = pod.initContainers![0]!;
  assert.deepEqual(init.args!.slice(-2), ["s3://abl/models/abc123/*", "/models/current/"]);
  const secretRef = init.env!.find((e) => e.name === "AWS_SECRET_ACCESS_KEY")!.valueFrom!
    .secretKeyRef!;
  assert.deepEqual(secretRef, { name: "abl-s3", key: "secretKey" });
  assert.equal(o.deployment.spec!.strategy!.type, "Recreate");
  assert.equal(o.deployment.metadata!.labels!["abliterate.dev/variant"], "abl-L12");
  assert.equal(o.deployment.metadata!.labels!["abliterate.dev/sweep"], "sweep-1");
  assert.deepEqual(o.service.spec!.selector, o.deployment.spec!.selector!.matchLabels);
  assert.equal(o.baseUrl, `http://${o.service.metadata!.name}.abl.svc:30000/v1`);
});

test("sglang with the runai streamer reads s3:// directly with path-style addressing", () => {
  const o = buildSglangObjects({
    name: "base",
    namespace: "abl",
    servedModelName: "base",
    weights: { kind: "runai-streamer", s3Uri: "s3://abl/models/def/", s3 },
  });
  const c = o.deployment.spec!.template.spec!.containers[0]!;
  assert.equal(c.args![c.args!.indexOf("--model-path") + 1], "s3://abl/models/def/");
  assert.equal(c.args![c.args!.indexOf("--load-format") + 1], "runai_streamer");
  assert.equal(
    c.env!.find((e) => e.name === "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING")!.value,
    "0",
  );
  assert.equal(o.deployment.spec!.template.spec!.initContainers, undefined);
  assert.throws(
    () =>
      buildSglangObjects({
        name: "x",
        namespace: "abl",
        servedModelName: "x",
        weights: { kind: "runai-streamer", s3Uri: "/local", s3 },
      }),
    /weights\.s3Uri must look like s3:\/\/bucket\/prefix\//,
  );
  assert.throws(
    () =>
      buildSglangObjects({
        name: "x",
        namespace: "Bad_NS",
        servedModelName: "x",
        weights: { kind: "path", path: "/m" },
      }),
    KubeSpecError,
  );
});

test("task pod: sleep infinity, no service account token, trial labels, resources", () => {
  const pod = buildTaskPod({
    name: "sweep-1/abl-L12/fix-git/3",
    namespace: "abl",
    image: "ghcr.io/laude-institute/t-bench/fix-git@sha256:0123",
    resources: { cpu: 1, memoryMiB: 2048, storageMiB: 10240 },
    ids: { sweep: "sweep-1", trial: "t-0001", variant: "abl-L12", task: "fix-git" },
  });
  assert.match(pod.metadata!.name!, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  assert.ok(pod.metadata!.name!.length <= 63);
  const spec = pod.spec!;
  assert.deepEqual(spec.containers[0]!.command, ["sleep", "infinity"]);
  assert.equal(spec.automountServiceAccountToken, false);
  assert.equal(spec.restartPolicy, "Never");
  assert.equal(spec.containers[0]!.resources!.limits!["ephemeral-storage"], "10240Mi");
  assert.equal(spec.containers[0]!.resources!.requests!.cpu, "1000m");
  assert.equal(pod.metadata!.labels!["abliterate.dev/trial"], "t-0001");
  assert.equal(pod.metadata!.labels!["abliterate.dev/task"], "fix-git");
  assert.equal(spec.tolerations, undefined);
  assert.throws(
    () => buildTaskPod({ name: "x", namespace: "abl", image: "i", resources: { cpu: 0 } }),
    /resources\.cpu must be a positive number, got 0/,
  );
});

test("capture Job: GPU, backoffLimit, activeDeadlineSeconds, ttlSecondsAfterFinished", () => {
  const job = buildCaptureJob({
    name: "acts-9f3",
    namespace: "abl",
    image: "abl/capture-worker:1",
    command: ["python3", "-m", "abl_capture"],
    args: ["--layers", "all"],
    s3,
    backoffLimit: 2,
  });
  assert.equal(job.spec!.backoffLimit, 2);
  assert.equal(job.spec!.activeDeadlineSeconds, 6 * 3600);
  assert.equal(job.spec!.ttlSecondsAfterFinished, 3600);
  const c = job.spec!.template.spec!.containers[0]!;
  assert.equal(c.resources!.limits!["nvidia.com/gpu"], "1");
  assert.equal(job.spec!.template.spec!.restartPolicy, "Never");
  assert.ok(job.spec!.template.spec!.tolerations!.some((t) => t.key === "nvidia.com/gpu"));
  assert.throws(
    () => buildCaptureJob({ name: "x", namespace: "abl", image: "i", command: [], s3 }),
    /command must not be empty/,
  );
  assert.throws(
    () =>
      buildCaptureJob({
        name: "x",
        namespace: "abl",
        image: "i",
        command: ["a"],
        backoffLimit: -1,
      }),
    /backoffLimit must be a non-negative integer, got -1/,
  );
});

test("names: DNS labels and label values stay valid and distinct", () => {
  assert.equal(toDnsLabel("abc-1"), "abc-1");
  const a = toDnsLabel("Sweep_1/Variant.A");
  const b = toDnsLabel("Sweep_1/Variant.B");
  assert.match(a, /^[a-z0-9-]+$/);
  assert.notEqual(a, b);
  const long = toDnsLabel("x".repeat(200));
  assert.equal(long.length <= 63, true);
  assert.equal(toLabelValue("ok.value_1"), "ok.value_1");
  assert.match(toLabelValue("-bad value-"), /^[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]$/);
});
