/**
 * The capture Job: a transformers worker on a GPU node for architectures the built-in engine
 * lacks (DESIGN "Where the heavy work runs"). Retries are bounded (`backoffLimit`), the run is
 * capped (`activeDeadlineSeconds`) and finished Jobs are garbage-collected
 * (`ttlSecondsAfterFinished`).
 */
import type { V1EnvVar, V1Job, V1Toleration } from "@kubernetes/client-node";
import { KubeSpecError } from "./errors.ts";
import { assertDnsLabel, toDnsLabel, type WorkloadIds, workloadLabels } from "./names.ts";
import { GPU_TOLERATION, type ResourceSpec, resourceRequirements } from "./resources.ts";
import type { S3Access } from "./sglang.ts";

/** Options of {@link buildCaptureJob}. */
export interface CaptureJobOptions {
  readonly name: string;
  readonly namespace: string;
  /** Worker image (python + torch + transformers). */
  readonly image: string;
  readonly command: readonly string[];
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Object-store access for reading the model and writing activations. */
  readonly s3?: S3Access;
  readonly resources?: ResourceSpec;
  readonly backoffLimit?: number;
  readonly activeDeadlineSeconds?: number;
  readonly ttlSecondsAfterFinished?: number;
  readonly shmMiB?: number;
  readonly ids?: WorkloadIds;
  readonly tolerations?: readonly V1Toleration[];
  readonly nodeSelector?: Readonly<Record<string, string>>;
  readonly serviceAccountName?: string;
}

/** One retry: a crash is often an OOM that will recur; two attempts tell them apart. */
export const DEFAULT_CAPTURE_BACKOFF_LIMIT = 1;
/** Capture of a big contrast set on one GPU takes well under this. */
export const DEFAULT_CAPTURE_DEADLINE_SECONDS = 6 * 3600;
/** Keep a finished Job an hour for `kubectl logs`, then let the TTL controller remove it. */
export const DEFAULT_CAPTURE_TTL_SECONDS = 3600;

function nonNegativeInt(v: number, key: string): number {
  if (!Number.isInteger(v) || v < 0)
    throw new KubeSpecError(`${key} must be a non-negative integer, got ${v}`);
  return v;
}

/** Builds the capture Job. */
export function buildCaptureJob(o: CaptureJobOptions): V1Job {
  assertDnsLabel(o.namespace, "namespace");
  if (o.command.length === 0) throw new KubeSpecError("command must not be empty");
  const labels = workloadLabels("capture", o.ids);
  const env: V1EnvVar[] = Object.entries(o.env ?? {}).map(([name, value]) => ({ name, value }));
  if (o.s3) {
    const secret = (key: string) => ({ secretKeyRef: { name: o.s3!.secretName, key } });
    env.push(
      { name: "AWS_ENDPOINT_URL", value: o.s3.endpointUrl },
      { name: "AWS_ACCESS_KEY_ID", valueFrom: secret("accessKey") },
      { name: "AWS_SECRET_ACCESS_KEY", valueFrom: secret("secretKey") },
      { name: "AWS_DEFAULT_REGION", value: o.s3.region ?? "us-east-1" },
    );
  }
  const resources = { gpus: 1, ...o.resources };
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: toDnsLabel(`capture-${o.name}`), namespace: o.namespace, labels },
    spec: {
      backoffLimit: nonNegativeInt(o.backoffLimit ?? DEFAULT_CAPTURE_BACKOFF_LIMIT, "backoffLimit"),
      activeDeadlineSeconds: nonNegativeInt(
        o.activeDeadlineSeconds ?? DEFAULT_CAPTURE_DEADLINE_SECONDS,
        "activeDeadlineSeconds",
      ),
      ttlSecondsAfterFinished: nonNegativeInt(
        o.ttlSecondsAfterFinished ?? DEFAULT_CAPTURE_TTL_SECONDS,
        "ttlSecondsAfterFinished",
      ),
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: "Never",
          ...(o.serviceAccountName ? { serviceAccountName: o.serviceAccountName } : {}),
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          containers: [
            {
              name: "capture",
              image: o.image,
              command: [...o.command],
              args: [...(o.args ?? [])],
              env,
              resources: resourceRequirements(resources),
              volumeMounts: [{ name: "dshm", mountPath: "/dev/shm" }],
            },
          ],
          volumes: [
            {
              name: "dshm",
              emptyDir: { medium: "Memory", ...(o.shmMiB ? { sizeLimit: `${o.shmMiB}Mi` } : {}) },
            },
          ],
          tolerations:
            resources.gpus > 0
              ? [GPU_TOLERATION, ...(o.tolerations ?? [])]
              : [...(o.tolerations ?? [])],
          ...(o.nodeSelector ? { nodeSelector: { ...o.nodeSelector } } : {}),
        },
      },
    },
  };
}
