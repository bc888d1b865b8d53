/**
 * Serves sweep variants on the cluster: one sglang Deployment + Service per variant, weights
 * synced from the object store (the model artifact's prefix), started in parallel and deleted when
 * the sweep no longer needs them — also when it fails or is cancelled.
 */
import {
  buildSglangObjects,
  type KubeLauncher,
  type RunningSglang,
  type S3Access,
} from "@abl/kube";
import type { ServedVariants, ServeVariants } from "./sweep.ts";

/** Options of {@link createSglangServe}. */
export interface SglangServeOptions {
  readonly launcher: KubeLauncher;
  /** Bucket the model artifacts live in (the object store's bucket). */
  readonly bucket: string;
  /** Key prefix of the store inside the bucket, if any. */
  readonly storePrefix?: string;
  readonly s3: S3Access;
  /** Sweep id, for labels and unique object names. */
  readonly sweep: string;
  readonly image?: string;
  readonly tensorParallel?: number;
  /** Startup (load + CUDA graph capture) budget per server. */
  readonly startupBudgetSeconds?: number;
  readonly extraArgs?: readonly string[];
  /** `sync`: an init container copies the weights into the pod (default); `runai-streamer`: sglang reads s3:// itself. */
  readonly weightLoading?: "sync" | "runai-streamer";
  /** Size of the memory-backed /dev/shm in MiB. */
  readonly shmMiB?: number;
}

/** A `ServeVariants` that launches sglang on GPU nodes through the Kubernetes API. */
export function createSglangServe(options: SglangServeOptions): ServeVariants {
  return async (variants, signal): Promise<ServedVariants> => {
    const budget = options.startupBudgetSeconds ?? 1800;
    const started = await Promise.allSettled(
      variants.map((v) => {
        const key = options.storePrefix ? `${options.storePrefix}/${v.prefix}` : v.prefix;
        const objs = buildSglangObjects({
          name: `${options.sweep}-${v.name}`,
          namespace: options.launcher.namespace,
          servedModelName: v.name,
          weights: {
            kind: options.weightLoading ?? "sync",
            s3Uri: `s3://${options.bucket}/${key}/`,
            s3: options.s3,
          },
          ...(options.shmMiB ? { shmMiB: options.shmMiB } : {}),
          startupBudgetSeconds: budget,
          ids: { sweep: options.sweep, variant: v.name },
          ...(options.image ? { image: options.image } : {}),
          ...(options.tensorParallel ? { tensorParallel: options.tensorParallel } : {}),
          ...(options.extraArgs ? { extraArgs: options.extraArgs } : {}),
        });
        return options.launcher.startSglang(objs, { signal, timeoutMs: (budget + 120) * 1000 });
      }),
    );
    const running = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) {
      await Promise.allSettled(running.map((r) => r.close()));
      throw failed.reason;
    }
    const byName = new Map<string, RunningSglang>(variants.map((v, i) => [v.name, running[i]!]));
    return {
      endpoints: Object.fromEntries(
        variants.map((v) => [
          v.name,
          { url: `${byName.get(v.name)!.baseUrl.replace(/\/+$/, "")}`, model: v.name },
        ]),
      ),
      async close() {
        await Promise.allSettled(running.map((r) => r.close()));
      },
    };
  };
}
