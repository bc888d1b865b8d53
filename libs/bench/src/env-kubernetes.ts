/**
 * The `kubernetes` environment: one Pod per trial from the task's image (reference/terminal-bench.md
 * §9 items 4–7): `sleep infinity`, the image's WORKDIR kept (no workingDir set), no service-account
 * token, `restartPolicy: Never`, resources from task.toml (cpu, memory and ephemeral-storage
 * requests; a memory limit at `memoryLimitMultiplier` × the request). tmux is driven through the
 * exec API, files move as tar over exec stdin/stdout, and the Pod is deleted on every exit path
 * (`stop` is called from the trial's `finally`). Exec is retried until the kubelet accepts it,
 * since some clusters reject exec right after the Pod turns Running.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, posix } from "node:path";
import { PassThrough, Readable, Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { CoreV1Api, Exec, KubeConfig, V1Pod, V1Status } from "@kubernetes/client-node";
import { TMUX_SETUP } from "./env-docker.ts";
import type { Environment, ExecOptions, ExecResult } from "./environment.ts";
import { EnvironmentError } from "./errors.ts";
import type { Task } from "./task.ts";

/** Options of {@link createKubernetesEnvironment}. */
export interface KubernetesEnvironmentOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** Seconds to wait for the Pod to run and accept exec (default 300, like Harbor's GKE backend). */
  readonly readyTimeoutSec?: number;
  /** Memory limit = request × this (default 1: Guaranteed memory, recorded in config). */
  readonly memoryLimitMultiplier?: number;
  /** Extra Pod labels (e.g. the run id, for a janitor). */
  readonly labels?: Readonly<Record<string, string>>;
  /** Poll period while waiting for the Pod (default 1000 ms). */
  readonly pollMs?: number;
}

/** Container name inside the task Pod. */
export const TASK_CONTAINER = "task";
/** Largest stdout/stderr kept from one exec (beyond it, the tail is kept). */
const MAX_EXEC_OUTPUT_BYTES = 64 * 1024 * 1024;
/** Waiting reasons that will not resolve by waiting. */
const FATAL_WAITING = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
]);

/** A DNS-1123 Pod name for a trial (≤ 63 chars, lower-case alphanumerics and `-`). */
export function podName(trialId: string): string {
  const clean = trialId
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return `abl-${clean}`.slice(0, 63).replace(/-+$/, "");
}

function labelValue(s: string): string {
  return s
    .replace(/[^A-Za-z0-9_.-]+/g, "-")
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
}

function quote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Builds the Pod object for a trial (exported for inspection and tests). */
export function buildTaskPod(
  task: Task,
  trialId: string,
  options: Pick<KubernetesEnvironmentOptions, "labels" | "memoryLimitMultiplier">,
): V1Pod {
  const env = task.config.environment;
  if (!env.dockerImage) {
    throw new EnvironmentError(
      `${task.id}: the kubernetes environment needs [environment].docker_image (images are never rebuilt)`,
    );
  }
  const requests: Record<string, string> = {};
  const limits: Record<string, string> = {};
  if (env.cpus) requests.cpu = String(env.cpus);
  if (env.memoryMb) {
    requests.memory = `${env.memoryMb}Mi`;
    limits.memory = `${Math.round(env.memoryMb * (options.memoryLimitMultiplier ?? 1))}Mi`;
  }
  if (env.storageMb) requests["ephemeral-storage"] = `${env.storageMb}Mi`;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: podName(trialId),
      labels: {
        "app.kubernetes.io/name": "abl-task",
        "abl.dev/trial": labelValue(trialId),
        "abl.dev/task": labelValue(task.id),
        ...options.labels,
      },
    },
    spec: {
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 0,
      containers: [
        {
          name: TASK_CONTAINER,
          image: env.dockerImage,
          command: ["sleep", "infinity"],
          env: Object.entries(env.env).map(([name, value]) => ({ name, value })),
          resources: { requests, limits },
        },
      ],
    },
  };
}

class Sink extends Writable {
  chunks: Buffer[] = [];
  size = 0;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void) {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > MAX_EXEC_OUTPUT_BYTES && this.chunks.length > 1)
      this.size -= this.chunks.shift()!.length;
    cb();
  }
  buffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function exitCodeOf(status: V1Status): number {
  if (status.status === "Success") return 0;
  const cause = status.details?.causes?.find((c) => c.reason === "ExitCode");
  if (cause?.message !== undefined && /^\d+$/.test(cause.message)) return Number(cause.message);
  throw new EnvironmentError(`exec failed: ${status.message ?? status.reason ?? "unknown status"}`);
}

function runTar(args: string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Only extraction reads stdin; creating an archive must not write to a tar that may already
    // have exited (EPIPE).
    const p = spawn("tar", args, { stdio: [input ? "pipe" : "ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    p.stdout!.on("data", (d: Buffer) => out.push(d));
    p.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
    });
    p.on("error", reject);
    p.on("close", (code) =>
      code === 0
        ? resolve(Buffer.concat(out))
        : reject(new EnvironmentError(`tar ${args.join(" ")} failed: ${err.trim()}`)),
    );
    if (input && p.stdin) {
      p.stdin.on("error", (e: NodeJS.ErrnoException) => {
        if (e.code !== "EPIPE") reject(e);
      });
      p.stdin.end(input);
    }
  });
}

/** Creates the kubernetes environment for one trial (started by `start`). */
export function createKubernetesEnvironment(
  task: Task,
  trialId: string,
  options: KubernetesEnvironmentOptions,
): Environment {
  // The client library is loaded on first use: it is heavy, and most runs use other environments.
  let clients: Promise<{ api: CoreV1Api; execApi: Exec }> | undefined;
  const load = () => {
    clients ??= import("@kubernetes/client-node").then((k8s) => ({
      api: options.kubeConfig.makeApiClient(k8s.CoreV1Api),
      execApi: new k8s.Exec(options.kubeConfig),
    }));
    return clients;
  };
  const ns = options.namespace;
  const name = podName(trialId);
  const pollMs = options.pollMs ?? 1000;

  async function rawExec(
    command: string[],
    stdin: Buffer | null,
    signal?: AbortSignal,
  ): Promise<{ exitCode: number; stdout: Buffer; stderr: Buffer }> {
    const out = new Sink();
    const err = new Sink();
    let status: V1Status | undefined;
    const input = stdin === null ? null : Readable.from([stdin]).pipe(new PassThrough());
    const { execApi } = await load();
    let ws: Awaited<ReturnType<Exec["exec"]>>;
    try {
      ws = await execApi.exec(ns, name, TASK_CONTAINER, command, out, err, input, false, (s) => {
        status = s;
      });
    } catch (e) {
      throw new EnvironmentError(
        `exec in pod ${ns}/${name} failed to connect: ${(e as Error).message}`,
        { cause: e },
      );
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        ws.close();
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      ws.on("close", () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      ws.on("error", (e: Error) => {
        signal?.removeEventListener("abort", onAbort);
        reject(
          new EnvironmentError(`exec stream error in pod ${name}: ${e.message}`, { cause: e }),
        );
      });
    });
    if (!status) throw new EnvironmentError(`exec in pod ${name} ended without a status`);
    return { exitCode: exitCodeOf(status), stdout: out.buffer(), stderr: err.buffer() };
  }

  const exec = async (command: string, o: ExecOptions = {}): Promise<ExecResult> => {
    const exports = Object.entries(o.env ?? {})
      .map(([k, v]) => `export ${k}=${quote(v)}; `)
      .join("");
    const cd = o.cwd ? `cd ${quote(o.cwd)} && ` : "";
    const inner =
      o.timeoutSec === undefined
        ? `bash -c ${quote(command)}`
        : `timeout -k 5 ${Math.max(1, Math.ceil(o.timeoutSec))} bash -c ${quote(command)}`;
    const r = await rawExec(["bash", "-c", `${exports}${cd}${inner}`], null, o.signal);
    return {
      exitCode: r.exitCode,
      stdout: r.stdout.toString("utf8"),
      stderr: r.stderr.toString("utf8"),
      timedOut: o.timeoutSec !== undefined && r.exitCode === 124,
    };
  };

  async function deletePod(): Promise<void> {
    const { api } = await load();
    try {
      await api.deleteNamespacedPod({ name, namespace: ns, gracePeriodSeconds: 0 });
    } catch (e) {
      if ((e as { code?: number }).code !== 404) throw e;
    }
  }

  return {
    kind: "kubernetes",
    workdir: null,
    async start(signal) {
      const { api } = await load();
      const pod = buildTaskPod(task, trialId, options);
      try {
        await api.createNamespacedPod({ namespace: ns, body: pod });
      } catch (e) {
        if ((e as { code?: number }).code !== 409) {
          throw new EnvironmentError(`creating pod ${ns}/${name} failed: ${(e as Error).message}`, {
            cause: e,
          });
        }
        // A pod left by an earlier attempt of this trial: replace it.
        await deletePod();
        await sleep(pollMs, undefined, signal ? { signal } : {});
        await api.createNamespacedPod({ namespace: ns, body: pod });
      }
      const deadline = Date.now() + (options.readyTimeoutSec ?? 300) * 1000;
      for (;;) {
        signal?.throwIfAborted();
        const p = await api.readNamespacedPod({ name, namespace: ns });
        const phase = p.status?.phase;
        const waiting = p.status?.containerStatuses?.[0]?.state?.waiting;
        if (phase === "Failed" || phase === "Succeeded") {
          throw new EnvironmentError(
            `pod ${name} ended during start (phase ${phase}): ${p.status?.message ?? ""}`,
          );
        }
        if (waiting?.reason && FATAL_WAITING.has(waiting.reason)) {
          throw new EnvironmentError(`pod ${name}: ${waiting.reason}: ${waiting.message ?? ""}`);
        }
        if (phase === "Running") {
          const probe = await rawExec(["true"], null, signal).catch(() => null);
          if (probe && probe.exitCode === 0) break;
        }
        if (Date.now() > deadline) {
          throw new EnvironmentError(
            `pod ${name} not ready for exec within ${options.readyTimeoutSec ?? 300} s (phase ${phase ?? "unknown"})`,
          );
        }
        await sleep(pollMs, undefined, signal ? { signal } : {});
      }
      const setup = await exec(
        `mkdir -p /logs/agent /logs/verifier && (${TMUX_SETUP})`,
        signal ? { signal } : {},
      );
      if (setup.exitCode !== 0) {
        throw new EnvironmentError(
          `pod setup (logs folders, tmux) failed: ${setup.stderr.trim().slice(-1000)}`,
        );
      }
    },
    exec,
    async tmux(args, signal) {
      const r = await rawExec(["tmux", ...args], null, signal);
      return {
        exitCode: r.exitCode,
        stdout: r.stdout.toString("utf8"),
        stderr: r.stderr.toString("utf8"),
        timedOut: false,
      };
    },
    async upload(localPath, remotePath, signal) {
      const isDir = (await stat(localPath)).isDirectory();
      const archive = isDir
        ? await runTar(["-C", localPath, "-cf", "-", "."])
        : await runTar(["-C", dirname(localPath), "-cf", "-", basename(localPath)]);
      const target = isDir ? remotePath : posix.dirname(remotePath);
      const script =
        isDir || basename(localPath) === posix.basename(remotePath)
          ? `mkdir -p ${quote(target)} && tar -xf - -C ${quote(target)}`
          : `mkdir -p ${quote(target)} && tar -xf - -C ${quote(target)} && mv ${quote(posix.join(target, basename(localPath)))} ${quote(remotePath)}`;
      const r = await rawExec(["bash", "-c", script], archive, signal);
      if (r.exitCode !== 0)
        throw new EnvironmentError(`upload to ${remotePath} failed: ${r.stderr.toString().trim()}`);
    },
    async download(remotePath, localPath, signal) {
      const r = await rawExec(
        ["tar", "-cf", "-", "-C", posix.dirname(remotePath), posix.basename(remotePath)],
        null,
        signal,
      );
      if (r.exitCode !== 0)
        throw new EnvironmentError(
          `download of ${remotePath} failed: ${r.stderr.toString().trim()}`,
        );
      const tmp = await mkdtemp(join(tmpdir(), "abl-k8s-"));
      try {
        await runTar(["-C", tmp, "-xf", "-"], r.stdout);
        await mkdir(dirname(localPath), { recursive: true });
        await rename(join(tmp, posix.basename(remotePath)), localPath);
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    },
    async stop() {
      await deletePod().catch(() => undefined);
    },
  };
}
