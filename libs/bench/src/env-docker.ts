/**
 * The `docker` environment: the task's image through the docker CLI, for users who have Docker.
 * One container per trial running `sleep infinity` with the image's WORKDIR, the task's cpus and
 * memory as limits, `--network none` when the task disallows internet, and a label naming the
 * trial. Without `docker_image` the image is built from `environment/` (tagged by task digest).
 * tmux is installed at setup if the image lacks it, as upstream Terminus-2 does (§4.1). Files move
 * with `docker cp`; commands run with `docker exec` under coreutils `timeout`.
 */
import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { Environment, ExecOptions, ExecResult } from "./environment.ts";
import { EnvironmentError } from "./errors.ts";
import type { Task } from "./task.ts";

/** Options of {@link createDockerEnvironment}. */
export interface DockerEnvironmentOptions {
  /** The docker executable (default `docker` on PATH). */
  readonly dockerPath?: string;
}

/** Largest stdout/stderr kept from one docker command. */
const MAX_DOCKER_OUTPUT_BYTES = 64 * 1024 * 1024;
/** Installs tmux with whichever package manager the image has (Terminus-2 setup). */
export const TMUX_SETUP =
  "command -v tmux >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux) || apk add --no-cache tmux || dnf install -y tmux || yum install -y tmux";

function runDocker(
  bin: string,
  args: readonly string[],
  signal?: AbortSignal,
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      args,
      { maxBuffer: MAX_DOCKER_OUTPUT_BYTES, ...(signal ? { signal } : {}) },
      (err, stdout, stderr) => {
        if (err && signal?.aborted) {
          reject(signal.reason);
          return;
        }
        if (err && typeof err.code !== "number") {
          reject(new EnvironmentError(`cannot run ${bin}: ${err.message}`, { cause: err }));
          return;
        }
        resolve({ exitCode: err ? (err.code as number) : 0, stdout, stderr, timedOut: false });
      },
    );
  });
}

/** Container name for a trial (docker allows [a-zA-Z0-9_.-]). */
export function containerName(trialId: string): string {
  return `abl-${trialId.replace(/[^a-zA-Z0-9_.-]/g, "-")}`.slice(0, 128);
}

/** Creates the docker environment for one trial (started by `start`). */
export function createDockerEnvironment(
  task: Task,
  trialId: string,
  options: DockerEnvironmentOptions = {},
): Environment {
  const bin = options.dockerPath ?? "docker";
  const name = containerName(trialId);
  const must = async (args: string[], what: string, signal?: AbortSignal): Promise<string> => {
    const r = await runDocker(bin, args, signal);
    if (r.exitCode !== 0) {
      throw new EnvironmentError(
        `docker ${what} failed (exit ${r.exitCode}): ${r.stderr.trim().slice(-2000)}`,
      );
    }
    return r.stdout;
  };

  const exec = async (command: string, o: ExecOptions = {}): Promise<ExecResult> => {
    const args = ["exec", "-i"];
    if (o.cwd) args.push("-w", o.cwd);
    for (const [k, v] of Object.entries(o.env ?? {})) args.push("-e", `${k}=${v}`);
    args.push(name);
    if (o.timeoutSec !== undefined) {
      args.push("timeout", "-k", "5", String(Math.max(1, Math.ceil(o.timeoutSec))));
    }
    args.push("bash", "-c", command);
    const r = await runDocker(bin, args, o.signal);
    return {
      ...r,
      timedOut: o.timeoutSec !== undefined && r.exitCode === 124,
    };
  };

  return {
    kind: "docker",
    workdir: null,
    async start(signal) {
      const env = task.config.environment;
      let image = env.dockerImage;
      if (image) {
        const have = await runDocker(bin, ["image", "inspect", image], signal);
        if (have.exitCode !== 0) await must(["pull", image], `pull ${image}`, signal);
      } else {
        image = `abl-task-${task.id}:${task.digest.slice("sha256:".length, "sha256:".length + 12)}`;
        await must(["build", "-t", image, join(task.dir, "environment")], `build ${image}`, signal);
      }
      const args = ["run", "-d", "--name", name, "--label", `abl.trial=${trialId}`, "--init"];
      if (env.cpus) args.push("--cpus", String(env.cpus));
      if (env.memoryMb) args.push("--memory", `${env.memoryMb}m`);
      if (!env.allowInternet) args.push("--network", "none");
      for (const [k, v] of Object.entries(env.env)) args.push("-e", `${k}=${v}`);
      args.push(image, "sleep", "infinity");
      await must(args, `run ${image}`, signal);
      const setup = await exec(`mkdir -p /logs/agent /logs/verifier && (${TMUX_SETUP})`, {
        ...(signal ? { signal } : {}),
      });
      if (setup.exitCode !== 0) {
        throw new EnvironmentError(
          `container setup (logs folders, tmux) failed: ${setup.stderr.trim().slice(-1000)}`,
        );
      }
    },
    exec,
    async tmux(args, signal) {
      return runDocker(bin, ["exec", name, "tmux", ...args], signal);
    },
    async upload(localPath, remotePath, signal) {
      const isDir = (await stat(localPath)).isDirectory();
      const parent = isDir ? remotePath : remotePath.replace(/\/[^/]*$/, "") || "/";
      const mk = await exec(`mkdir -p '${parent.replaceAll("'", "'\\''")}'`, {
        ...(signal ? { signal } : {}),
      });
      if (mk.exitCode !== 0)
        throw new EnvironmentError(`mkdir ${parent} failed: ${mk.stderr.trim()}`);
      await must(
        ["cp", isDir ? `${localPath}/.` : localPath, `${name}:${remotePath}`],
        `cp to ${remotePath}`,
        signal,
      );
    },
    async download(remotePath, localPath, signal) {
      await must(["cp", `${name}:${remotePath}`, localPath], `cp from ${remotePath}`, signal);
    },
    async stop() {
      // Removed by name even when `run` failed half-way (it may still have created it).
      await runDocker(bin, ["rm", "-f", name]).catch(() => undefined);
    },
  };
}
