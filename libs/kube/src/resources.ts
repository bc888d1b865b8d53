import type { V1ResourceRequirements, V1Toleration } from "@kubernetes/client-node";
import { KubeSpecError } from "./errors.ts";

/** CPU, memory and GPUs of a container; requests equal limits (Guaranteed QoS). */
export interface ResourceSpec {
  /** CPU cores, e.g. 2 or 0.5. */
  readonly cpu?: number;
  /** Memory in MiB. */
  readonly memoryMiB?: number;
  /** Ephemeral storage in MiB. */
  readonly storageMiB?: number;
  /** nvidia.com/gpu count. */
  readonly gpus?: number;
}

/** Toleration of the usual GPU node taint `nvidia.com/gpu:NoSchedule`. */
export const GPU_TOLERATION: V1Toleration = {
  key: "nvidia.com/gpu",
  operator: "Exists",
  effect: "NoSchedule",
};

function positive(v: number | undefined, key: string, integer: boolean): void {
  if (v === undefined) return;
  if (!(v > 0) || (integer && !Number.isInteger(v))) {
    throw new KubeSpecError(
      `${key} must be a positive ${integer ? "integer" : "number"}, got ${v}`,
    );
  }
}

/** Kubernetes resource requirements from a {@link ResourceSpec} (requests = limits). */
export function resourceRequirements(
  spec: ResourceSpec,
  key = "resources",
): V1ResourceRequirements {
  positive(spec.cpu, `${key}.cpu`, false);
  positive(spec.memoryMiB, `${key}.memoryMiB`, true);
  positive(spec.storageMiB, `${key}.storageMiB`, true);
  if (spec.gpus !== undefined && (!Number.isInteger(spec.gpus) || spec.gpus < 0)) {
    throw new KubeSpecError(`${key}.gpus must be a non-negative integer, got ${spec.gpus}`);
  }
  const q: Record<string, string> = {};
  if (spec.cpu !== undefined) q.cpu = `${Math.round(spec.cpu * 1000)}m`;
  if (spec.memoryMiB !== undefined) q.memory = `${spec.memoryMiB}Mi`;
  if (spec.storageMiB !== undefined) q["ephemeral-storage"] = `${spec.storageMiB}Mi`;
  if (spec.gpus) q["nvidia.com/gpu"] = String(spec.gpus);
  return Object.keys(q).length === 0 ? {} : { requests: { ...q }, limits: { ...q } };
}
