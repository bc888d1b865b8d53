/**
 * The sglang Deployment + Service that serve one model variant (reference/infra.md §1):
 * `--host 0.0.0.0`, one `--served-model-name` per variant, `--enable-metrics` on the HTTP port,
 * a startupProbe on /health_generate with a budget for load + CUDA-graph capture (sglang answers
 * 503 until warm-up ends, gotcha 6), readiness on /health_generate, liveness on /health, a
 * memory-backed /dev/shm, GPU limits and the GPU taint toleration. Weights come from the object
 * store either through an init container that syncs the model prefix into an emptyDir, or through
 * sglang's runai streamer reading s3:// directly.
 */
import type {
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1Service,
  V1Toleration,
  V1Volume,
  V1VolumeMount,
} from "@kubernetes/client-node";
import { KubeSpecError } from "./errors.ts";
import { assertDnsLabel, toDnsLabel, type WorkloadIds, workloadLabels } from "./names.ts";
import { GPU_TOLERATION, type ResourceSpec, resourceRequirements } from "./resources.ts";

/** sglang image pinned to a release (field sets of the HTTP API change between versions). */
export const DEFAULT_SGLANG_IMAGE = "lmsysorg/sglang:v0.5.5.post3-cu129-amd64";
/** s5cmd image for the weight-sync init container (not Debian's `mc`, infra.md §1.5). */
export const DEFAULT_SYNC_IMAGE = "peakcom/s5cmd:v2.3.0";
/** sglang's default HTTP port. */
export const SGLANG_PORT = 30000;
/** Startup budget: loading tens of GiB and capturing CUDA graphs can take many minutes. */
export const DEFAULT_STARTUP_BUDGET_SECONDS = 1800;
const STARTUP_PERIOD_SECONDS = 10;

/** S3 credentials live in a Secret with these keys (never inline in the pod spec). */
export interface S3Access {
  /** http(s) URL of the S3 endpoint (MinIO service). */
  readonly endpointUrl: string;
  /** Secret holding `accessKey` and `secretKey`. */
  readonly secretName: string;
  readonly region?: string;
}

/** Where the weights come from. */
export type WeightSource =
  | {
      readonly kind: "sync";
      readonly s3Uri: string;
      readonly s3: S3Access;
      readonly image?: string;
    }
  | { readonly kind: "runai-streamer"; readonly s3Uri: string; readonly s3: S3Access }
  | { readonly kind: "path"; readonly path: string };

/** Options of {@link buildSglangObjects}. */
export interface SglangOptions {
  /** Base name (variant); made a DNS label. */
  readonly name: string;
  readonly namespace: string;
  /** `--served-model-name`: the model id clients send and the `model_name` metric label. */
  readonly servedModelName: string;
  readonly weights: WeightSource;
  readonly image?: string;
  /** Tensor-parallel degree = GPUs per pod. */
  readonly tensorParallel?: number;
  readonly port?: number;
  readonly resources?: Omit<ResourceSpec, "gpus">;
  /** Size limit of the memory-backed /dev/shm in MiB (counts against the pod's memory). */
  readonly shmMiB?: number;
  readonly startupBudgetSeconds?: number;
  readonly extraArgs?: readonly string[];
  readonly tolerations?: readonly V1Toleration[];
  readonly nodeSelector?: Readonly<Record<string, string>>;
  readonly ids?: WorkloadIds;
  readonly serviceAccountName?: string;
}

/** The Deployment and its Service; `baseUrl` is the in-cluster OpenAI base URL. */
export interface SglangObjects {
  readonly deployment: V1Deployment;
  readonly service: V1Service;
  readonly baseUrl: string;
}

function s3Env(s3: S3Access): V1EnvVar[] {
  const secret = (key: string) => ({ secretKeyRef: { name: s3.secretName, key } });
  return [
    { name: "AWS_ENDPOINT_URL", value: s3.endpointUrl },
    { name: "AWS_ACCESS_KEY_ID", valueFrom: secret("accessKey") },
    { name: "AWS_SECRET_ACCESS_KEY", valueFrom: secret("secretKey") },
    { name: "AWS_DEFAULT_REGION", value: s3.region ?? "us-east-1" },
    { name: "AWS_EC2_METADATA_DISABLED", value: "true" },
  ];
}

function checkS3Uri(uri: string): string {
  if (!/^s3:\/\/[^/]+\/.+/.test(uri)) {
    throw new KubeSpecError(`weights.s3Uri must look like s3://bucket/prefix/, got "${uri}"`);
  }
  return uri.endsWith("/") ? uri : `${uri}/`;
}

/** Builds the sglang Deployment + Service for one variant. */
export function buildSglangObjects(o: SglangOptions): SglangObjects {
  assertDnsLabel(o.namespace, "namespace");
  if (o.servedModelName.trim() === "") throw new KubeSpecError("servedModelName must not be empty");
  const name = toDnsLabel(`sglang-${o.name}`);
  const port = o.port ?? SGLANG_PORT;
  const tp = o.tensorParallel ?? 1;
  if (!Number.isInteger(tp) || tp < 1)
    throw new KubeSpecError(`tensorParallel must be a positive integer, got ${tp}`);
  const budget = o.startupBudgetSeconds ?? DEFAULT_STARTUP_BUDGET_SECONDS;
  if (!(budget >= STARTUP_PERIOD_SECONDS)) {
    throw new KubeSpecError(
      `startupBudgetSeconds must be at least ${STARTUP_PERIOD_SECONDS}, got ${budget}`,
    );
  }
  const labels = workloadLabels("sglang", { ...o.ids, variant: o.ids?.variant ?? o.name });
  const selector = { ...labels };
  const volumes: V1Volume[] = [
    {
      name: "dshm",
      emptyDir: { medium: "Memory", ...(o.shmMiB ? { sizeLimit: `${o.shmMiB}Mi` } : {}) },
    },
  ];
  const mounts: V1VolumeMount[] = [{ name: "dshm", mountPath: "/dev/shm" }];
  const env: V1EnvVar[] = [];
  const initContainers: V1Container[] = [];
  let modelPath: string;
  const extra: string[] = [];
  switch (o.weights.kind) {
    case "sync": {
      const uri = checkS3Uri(o.weights.s3Uri);
      modelPath = "/models/current";
      volumes.push({ name: "model", emptyDir: {} });
      mounts.push({ name: "model", mountPath: "/models", readOnly: true });
      initContainers.push({
        name: "sync-weights",
        image: o.weights.image ?? DEFAULT_SYNC_IMAGE,
        command: ["/s5cmd"],
        args: ["--endpoint-url", o.weights.s3.endpointUrl, "sync", `${uri}*`, `${modelPath}/`],
        env: s3Env(o.weights.s3),
        volumeMounts: [{ name: "model", mountPath: "/models" }],
        resources: resourceRequirements({ cpu: 1, memoryMiB: 1024 }),
      });
      break;
    }
    case "runai-streamer":
      modelPath = checkS3Uri(o.weights.s3Uri);
      extra.push("--load-format", "runai_streamer");
      env.push(...s3Env(o.weights.s3), {
        name: "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING",
        value: "0",
      });
      break;
    case "path":
      modelPath = o.weights.path;
      break;
  }
  const container: V1Container = {
    name: "sglang",
    image: o.image ?? DEFAULT_SGLANG_IMAGE,
    command: ["python3", "-m", "sglang.launch_server"],
    args: [
      "--model-path",
      modelPath,
      "--served-model-name",
      o.servedModelName,
      "--host",
      "0.0.0.0",
      "--port",
      String(port),
      "--tp-size",
      String(tp),
      "--enable-metrics",
      ...extra,
      ...(o.extraArgs ?? []),
    ],
    ports: [{ name: "http", containerPort: port }],
    env,
    resources: resourceRequirements({ ...o.resources, gpus: tp }),
    volumeMounts: mounts,
    startupProbe: {
      httpGet: { path: "/health_generate", port },
      periodSeconds: STARTUP_PERIOD_SECONDS,
      timeoutSeconds: 30,
      failureThreshold: Math.ceil(budget / STARTUP_PERIOD_SECONDS),
    },
    readinessProbe: {
      httpGet: { path: "/health_generate", port },
      periodSeconds: 30,
      timeoutSeconds: 60,
      failureThreshold: 3,
    },
    livenessProbe: {
      httpGet: { path: "/health", port },
      periodSeconds: 60,
      timeoutSeconds: 60,
      failureThreshold: 5,
    },
  };
  const deployment: V1Deployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: o.namespace, labels },
    spec: {
      replicas: 1,
      // GPUs rarely allow a second pod beside the old one.
      strategy: { type: "Recreate" },
      selector: { matchLabels: selector },
      template: {
        metadata: {
          labels,
          annotations: {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": String(port),
            "prometheus.io/path": "/metrics",
          },
        },
        spec: {
          ...(o.serviceAccountName ? { serviceAccountName: o.serviceAccountName } : {}),
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          ...(initContainers.length > 0 ? { initContainers } : {}),
          containers: [container],
          volumes,
          tolerations: [GPU_TOLERATION, ...(o.tolerations ?? [])],
          ...(o.nodeSelector ? { nodeSelector: { ...o.nodeSelector } } : {}),
        },
      },
    },
  };
  const service: V1Service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: o.namespace, labels },
    spec: {
      selector,
      ports: [{ name: "http", port, targetPort: "http" }],
    },
  };
  return { deployment, service, baseUrl: `http://${name}.${o.namespace}.svc:${port}/v1` };
}
