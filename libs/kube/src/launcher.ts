/**
 * Creates Kubernetes workloads, waits for them with a list-then-watch loop that tracks
 * `resourceVersion` (re-watching from the last seen version when the server closes the stream,
 * re-listing when it answers 410 Gone), reads logs, and deletes what it created on every exit
 * path. Built on @kubernetes/client-node 1.4 (the last line that runs on Node 20, infra.md §0).
 */
import {
  ApiException,
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1Deployment,
  type V1Job,
  type V1Pod,
  type V1Service,
  Watch,
} from "@kubernetes/client-node";
import {
  deploymentReadiness,
  jobOutcome,
  jobReadiness,
  podReadiness,
  type Readiness,
} from "./conditions.ts";
import { KubeError, KubeTimeoutError, KubeWorkloadError } from "./errors.ts";
import type { SglangObjects } from "./sglang.ts";

/** Kinds the launcher manages. */
export type WorkloadKind = "Pod" | "Deployment" | "Job" | "Service";

/** A watch asks the server to end the stream after this long; the loop then re-watches. */
export const WATCH_TIMEOUT_SECONDS = 300;
/** Consecutive failed watch connections tolerated before giving up. */
export const MAX_WATCH_FAILURES = 5;
/** Log lines kept from a pod (the tail; enough for a stack trace). */
export const MAX_LOG_LINES = 2000;

/** A pino-compatible logger subset. */
export interface LauncherLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Options of {@link createKubeLauncher}. */
export interface KubeLauncherOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly logger?: LauncherLogger;
  /** Wait before reconnecting a failed watch, per consecutive failure (ms); tests pass 0. */
  readonly retryDelayMs?: number;
}

/** Options of every wait. */
export interface WaitOptions {
  readonly signal?: AbortSignal;
  /** Give up after this long (ms). */
  readonly timeoutMs: number;
}

/** A running sglang server; `close` deletes its Deployment and Service. */
export interface RunningSglang {
  readonly baseUrl: string;
  readonly deploymentName: string;
  close(): Promise<void>;
}

/** A running task pod; `close` deletes it. */
export interface RunningTaskPod {
  readonly name: string;
  readonly namespace: string;
  logs(): Promise<string>;
  close(): Promise<void>;
}

/** How a Job ended. */
export interface JobResult {
  readonly succeeded: boolean;
  readonly reason: string;
  /** Tail of the last pod's log. */
  readonly logs: string;
}

/** The launcher; see {@link createKubeLauncher}. */
export interface KubeLauncher {
  readonly namespace: string;
  create<T extends V1Pod | V1Deployment | V1Job | V1Service>(
    kind: WorkloadKind,
    body: T,
  ): Promise<T>;
  /** Deletes (background propagation); an absent object is not an error. */
  delete(kind: WorkloadKind, name: string): Promise<void>;
  /** Waits until `check` says ready; throws KubeWorkloadError on failure, KubeTimeoutError on timeout. */
  waitFor<T>(
    kind: "Pod" | "Deployment" | "Job",
    name: string,
    check: (obj: T) => Readiness,
    opts: WaitOptions,
  ): Promise<T>;
  podLogs(name: string, container?: string): Promise<string>;
  /** Creates the sglang Service + Deployment and waits until available; deletes both on failure. */
  startSglang(objs: SglangObjects, opts: WaitOptions): Promise<RunningSglang>;
  /** Creates a task pod and waits until Ready; deletes it on failure. */
  startTaskPod(pod: V1Pod, opts: WaitOptions): Promise<RunningTaskPod>;
  /** Runs a Job to completion, collects its logs and deletes it (always). */
  runJob(job: V1Job, opts: WaitOptions): Promise<JobResult>;
}

const PATHS: Record<"Pod" | "Deployment" | "Job", (ns: string) => string> = {
  Pod: (ns) => `/api/v1/namespaces/${ns}/pods`,
  Deployment: (ns) => `/apis/apps/v1/namespaces/${ns}/deployments`,
  Job: (ns) => `/apis/batch/v1/namespaces/${ns}/jobs`,
};

type WatchEnd = { end: "stopped"; obj: unknown } | { end: "closed"; rv: string } | { end: "gone" };

function statusCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const c = (err as { statusCode?: unknown; code?: unknown } | null)?.statusCode;
  return typeof c === "number" ? c : undefined;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });

/** Creates a launcher bound to one namespace. */
export function createKubeLauncher(options: KubeLauncherOptions): KubeLauncher {
  const { kubeConfig, namespace } = options;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const batch = kubeConfig.makeApiClient(BatchV1Api);
  const watcher = new Watch(kubeConfig);
  const retryDelayMs = options.retryDelayMs ?? 1000;
  const log = options.logger;

  async function list(
    kind: "Pod" | "Deployment" | "Job",
    name: string,
  ): Promise<{ rv: string; item: unknown }> {
    const q = { namespace, fieldSelector: `metadata.name=${name}` };
    const res =
      kind === "Pod"
        ? await core.listNamespacedPod(q)
        : kind === "Deployment"
          ? await apps.listNamespacedDeployment(q)
          : await batch.listNamespacedJob(q);
    return { rv: res.metadata?.resourceVersion ?? "", item: res.items[0] };
  }

  function watchOnce(
    kind: "Pod" | "Deployment" | "Job",
    name: string,
    rv: string,
    onObject: (type: string, obj: unknown) => boolean,
    signal: AbortSignal,
  ): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve, reject) => {
      let last = rv;
      let controller: AbortController | undefined;
      let settled = false;
      const finish = (f: () => void) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        controller?.abort();
        f();
      };
      const onAbort = () => finish(() => reject(signal.reason));
      if (signal.aborted) return reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      watcher
        .watch(
          PATHS[kind](namespace),
          {
            fieldSelector: `metadata.name=${name}`,
            resourceVersion: rv,
            allowWatchBookmarks: true,
            timeoutSeconds: WATCH_TIMEOUT_SECONDS,
          },
          (
            type: string,
            obj: { metadata?: { resourceVersion?: string }; code?: number; message?: string },
          ) => {
            if (settled) return;
            if (type === "ERROR") {
              if (obj.code === 410) finish(() => resolve({ end: "gone" }));
              else
                finish(() =>
                  reject(
                    new KubeError(
                      `watch of ${kind} ${name} failed: ${obj.code} ${obj.message ?? ""}`,
                    ),
                  ),
                );
              return;
            }
            if (obj.metadata?.resourceVersion) last = obj.metadata.resourceVersion;
            if (type === "BOOKMARK") return;
            try {
              if (onObject(type, obj)) finish(() => resolve({ end: "stopped", obj }));
            } catch (err) {
              finish(() => reject(err));
            }
          },
          (err: unknown) => {
            if (settled) return;
            if (err && statusCode(err) === 410) finish(() => resolve({ end: "gone" }));
            else if (err)
              finish(() => reject(new KubeError(`watch of ${kind} ${name} broke`, { cause: err })));
            else finish(() => resolve({ end: "closed", rv: last }));
          },
        )
        .then(
          (c) => {
            controller = c;
            if (settled) c.abort();
          },
          (err: unknown) =>
            finish(() =>
              reject(new KubeError(`watch of ${kind} ${name} failed to start`, { cause: err })),
            ),
        );
    });
  }

  async function waitFor<T>(
    kind: "Pod" | "Deployment" | "Job",
    name: string,
    check: (obj: T) => Readiness,
    opts: WaitOptions,
  ): Promise<T> {
    const deadline = AbortSignal.timeout(opts.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
    let lastSeen = "not created yet";
    let failures = 0;
    const evaluate = (obj: T): boolean => {
      const r = check(obj);
      if (r.state === "ready") return true;
      if (r.state === "failed")
        throw new KubeWorkloadError(`${kind} ${namespace}/${name} failed: ${r.reason}`);
      if (r.detail !== lastSeen) log?.info({ kind, name, detail: r.detail }, "waiting");
      lastSeen = r.detail;
      return false;
    };
    try {
      for (;;) {
        signal.throwIfAborted();
        const listed = await list(kind, name);
        if (listed.item !== undefined && evaluate(listed.item as T)) return listed.item as T;
        let rv = listed.rv;
        for (;;) {
          let end: WatchEnd;
          try {
            end = await watchOnce(
              kind,
              name,
              rv,
              (type, obj) => {
                if (type === "DELETED")
                  throw new KubeWorkloadError(
                    `${kind} ${namespace}/${name} was deleted while waiting`,
                  );
                return evaluate(obj as T);
              },
              signal,
            );
            failures = 0;
          } catch (err) {
            if (err instanceof KubeWorkloadError || signal.aborted) throw err;
            failures++;
            if (failures > MAX_WATCH_FAILURES) throw err;
            log?.warn({ kind, name, failures, err: String(err) }, "watch failed; retrying");
            await sleep(retryDelayMs * failures, signal);
            break; // re-list: the connection state is unknown
          }
          if (end.end === "stopped") return end.obj as T;
          if (end.end === "gone") {
            log?.info({ kind, name, rv }, "resourceVersion expired (410); re-listing");
            break;
          }
          rv = end.rv;
        }
      }
    } catch (err) {
      if (deadline.aborted && !(err instanceof KubeWorkloadError)) {
        throw new KubeTimeoutError(
          `${kind} ${namespace}/${name} not ready after ${opts.timeoutMs} ms; last seen: ${lastSeen}`,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
  }

  async function create<T extends V1Pod | V1Deployment | V1Job | V1Service>(
    kind: WorkloadKind,
    body: T,
  ): Promise<T> {
    const name = body.metadata?.name ?? "(unnamed)";
    try {
      let out: unknown;
      if (kind === "Pod") out = await core.createNamespacedPod({ namespace, body: body as V1Pod });
      else if (kind === "Service")
        out = await core.createNamespacedService({ namespace, body: body as V1Service });
      else if (kind === "Deployment")
        out = await apps.createNamespacedDeployment({ namespace, body: body as V1Deployment });
      else out = await batch.createNamespacedJob({ namespace, body: body as V1Job });
      log?.info({ kind, name, namespace }, "created");
      return out as T;
    } catch (err) {
      const code = statusCode(err);
      throw new KubeError(
        code === 409
          ? `${kind} ${namespace}/${name} already exists (a leftover of an earlier run? delete it first)`
          : `creating ${kind} ${namespace}/${name} failed${code ? ` with HTTP ${code}` : ""}`,
        { cause: err },
      );
    }
  }

  async function del(kind: WorkloadKind, name: string): Promise<void> {
    const q = { namespace, name, propagationPolicy: "Background" };
    try {
      if (kind === "Pod") await core.deleteNamespacedPod({ ...q, gracePeriodSeconds: 5 });
      else if (kind === "Service") await core.deleteNamespacedService(q);
      else if (kind === "Deployment") await apps.deleteNamespacedDeployment(q);
      else await batch.deleteNamespacedJob(q);
      log?.info({ kind, name, namespace }, "deleted");
    } catch (err) {
      if (statusCode(err) === 404) return;
      throw new KubeError(`deleting ${kind} ${namespace}/${name} failed`, { cause: err });
    }
  }

  async function podLogs(name: string, container?: string): Promise<string> {
    try {
      return await core.readNamespacedPodLog({
        namespace,
        name,
        tailLines: MAX_LOG_LINES,
        ...(container ? { container } : {}),
      });
    } catch (err) {
      throw new KubeError(`reading logs of pod ${namespace}/${name} failed`, { cause: err });
    }
  }

  /** Deletes everything given, reporting the first failure after trying all. */
  async function deleteAll(items: readonly [WorkloadKind, string][]): Promise<void> {
    const results = await Promise.allSettled(items.map(([k, n]) => del(k, n)));
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  return {
    namespace,
    create,
    delete: del,
    waitFor,
    podLogs,
    async startSglang(objs, opts) {
      const depName = objs.deployment.metadata!.name!;
      const svcName = objs.service.metadata!.name!;
      const created: [WorkloadKind, string][] = [];
      try {
        await create("Service", objs.service);
        created.push(["Service", svcName]);
        await create("Deployment", objs.deployment);
        created.push(["Deployment", depName]);
        await waitFor<V1Deployment>("Deployment", depName, deploymentReadiness, opts);
      } catch (err) {
        await deleteAll(created).catch((e: unknown) =>
          log?.warn({ err: String(e) }, "cleanup failed"),
        );
        throw err;
      }
      let closed = false;
      return {
        baseUrl: objs.baseUrl,
        deploymentName: depName,
        async close() {
          if (closed) return;
          closed = true;
          await deleteAll(created);
        },
      };
    },
    async startTaskPod(pod, opts) {
      const name = pod.metadata!.name!;
      let created = false;
      try {
        await create("Pod", pod);
        created = true;
        await waitFor<V1Pod>("Pod", name, podReadiness, opts);
      } catch (err) {
        if (created)
          await del("Pod", name).catch((e: unknown) =>
            log?.warn({ err: String(e) }, "cleanup failed"),
          );
        throw err;
      }
      let closed = false;
      return {
        name,
        namespace,
        logs: () => podLogs(name),
        async close() {
          if (closed) return;
          closed = true;
          await del("Pod", name);
        },
      };
    },
    async runJob(job, opts) {
      const name = job.metadata!.name!;
      let created = false;
      try {
        await create("Job", job);
        created = true;
        const done = await waitFor<V1Job>("Job", name, jobReadiness, opts);
        const outcome = jobOutcome(done)!;
        const pods = await core.listNamespacedPod({ namespace, labelSelector: `job-name=${name}` });
        const time = (p: V1Pod) => new Date(p.metadata?.creationTimestamp ?? 0).getTime();
        const newest = [...pods.items].sort((a, b) => time(a) - time(b)).at(-1);
        const logs = newest?.metadata?.name ? await podLogs(newest.metadata.name) : "";
        return { succeeded: outcome.succeeded, reason: outcome.reason, logs };
      } finally {
        if (created) await del("Job", name);
      }
    },
  };
}
