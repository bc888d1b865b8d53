/**
 * One benchmark trial's Pod: the task's image kept alive with `sleep infinity` and driven through
 * the exec API (as Harbor does, reference/terminal-bench.md §5 item 6). It gets no service
 * account token (the agent runs arbitrary commands in it) and no service links.
 */
import type { V1EnvVar, V1Pod, V1Toleration } from "@kubernetes/client-node";
import { KubeSpecError } from "./errors.ts";
import { assertDnsLabel, toDnsLabel, type WorkloadIds, workloadLabels } from "./names.ts";
import { GPU_TOLERATION, type ResourceSpec, resourceRequirements } from "./resources.ts";

/** Options of {@link buildTaskPod}. */
export interface TaskPodOptions {
  /** Pod name base (made a DNS label, e.g. from the trial id). */
  readonly name: string;
  readonly namespace: string;
  /** The task's prebuilt image (pinned by digest when the dataset gives one). */
  readonly image: string;
  readonly resources?: ResourceSpec;
  readonly env?: Readonly<Record<string, string>>;
  readonly workingDir?: string;
  /** Hard cap on the pod's life (a stuck trial cannot hold a node forever). */
  readonly activeDeadlineSeconds?: number;
  readonly ids?: WorkloadIds;
  readonly tolerations?: readonly V1Toleration[];
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** Allow network egress? Recorded as a label for a NetworkPolicy to select on. */
  readonly allowInternet?: boolean;
}

/** Default life cap of a task pod: longer than any Terminal-Bench agent + verifier timeout. */
export const DEFAULT_TASK_POD_DEADLINE_SECONDS = 4 * 3600;

/** Builds a trial's task Pod. */
export function buildTaskPod(o: TaskPodOptions): V1Pod {
  assertDnsLabel(o.namespace, "namespace");
  if (o.image.trim() === "") throw new KubeSpecError("image must not be empty");
  const deadline = o.activeDeadlineSeconds ?? DEFAULT_TASK_POD_DEADLINE_SECONDS;
  if (!Number.isInteger(deadline) || deadline < 1) {
    throw new KubeSpecError(`activeDeadlineSeconds must be a positive integer, got ${deadline}`);
  }
  const labels = {
    ...workloadLabels("task", o.ids),
    "abliterate.dev/internet": o.allowInternet ? "allowed" : "denied",
  };
  const env: V1EnvVar[] = Object.entries(o.env ?? {}).map(([name, value]) => ({ name, value }));
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: toDnsLabel(`task-${o.name}`), namespace: o.namespace, labels },
    spec: {
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 5,
      activeDeadlineSeconds: deadline,
      containers: [
        {
          name: "task",
          image: o.image,
          command: ["sleep", "infinity"],
          ...(o.workingDir ? { workingDir: o.workingDir } : {}),
          env,
          resources: resourceRequirements(o.resources ?? {}),
        },
      ],
      ...(o.resources?.gpus
        ? { tolerations: [GPU_TOLERATION, ...(o.tolerations ?? [])] }
        : o.tolerations
          ? { tolerations: [...o.tolerations] }
          : {}),
      ...(o.nodeSelector ? { nodeSelector: { ...o.nodeSelector } } : {}),
    },
  };
}
