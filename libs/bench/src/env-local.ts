/**
 * The `local` environment: a bubblewrap sandbox with a tmux server inside, no network.
 *
 * Layout inside the sandbox: the host's system folders (/usr, /etc, /bin, /lib*, /sbin, /opt,
 * /var) bound read-only over an otherwise empty root that is itself remounted read-only; a private
 * /tmp; and writable task folders — the image WORKDIR (default /app), every COPY destination's top
 * folder, /logs, /tests, /solution and /root — each backed by a folder in this trial's scratch
 * directory. The task's `environment/Dockerfile` is replayed (WORKDIR, ENV, COPY, RUN; see
 * dockerfile.ts) so its files sit where the image would have them. Nothing else of the host is
 * visible (not the task's tests or solution, not the project), and `--unshare-all` gives the
 * sandbox its own network namespace with only loopback.
 *
 * The tmux server runs in the foreground (`tmux -D`) as the sandbox's main process, with its
 * socket in a bound control folder, so the host's tmux client drives it directly. `exec` runs a
 * command as a one-shot tmux session inside, writing stdout, stderr and the exit code to the
 * control folder; files move through a bound transfer folder. Killing bwrap ends the sandbox's
 * PID namespace and everything in it.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import {
  cp,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, posix } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { processAlive } from "@abl/store";
import { type DockerStep, parseDockerfile } from "./dockerfile.ts";
import type { Environment, ExecOptions, ExecResult } from "./environment.ts";
import { EnvironmentError } from "./errors.ts";
import type { Task } from "./task.ts";

/** Host folders bound read-only into the sandbox (when present). */
const SYSTEM_DIRS = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt", "var"];
/** Top-level folders that may never be made writable task folders. */
const RESERVED = new Set([...SYSTEM_DIRS, "proc", "dev", "sys", "run", "tmp"]);
/** Where the control folder (tmux socket, exec files, transfers) appears inside. */
const CTL = "/run/abl";
/** Largest stdout or stderr kept from one exec (the tail is kept). */
export const MAX_EXEC_OUTPUT_BYTES = 4 * 1024 * 1024;
/** How long start waits for the tmux server socket to appear. */
const SOCKET_WAIT_MS = 15_000;
/** Poll period for exec completion files. */
const EXEC_POLL_MS = 25;
/** Extra seconds the host waits past an exec timeout before giving up on the sandbox. */
const EXEC_GRACE_SEC = 15;

/** Options of {@link createLocalEnvironment}. */
export interface LocalEnvironmentOptions {
  /** Parent of the scratch folder (default the OS temp dir; keep it short: socket paths ≤ 107). */
  readonly scratchRoot?: string;
  readonly bwrapPath?: string;
  readonly tmuxPath?: string;
}

function quote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

async function readTail(path: string, limit: number): Promise<string> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(path, "r");
    const size = (await fh.stat()).size;
    const n = Math.min(size, limit);
    const buf = Buffer.alloc(n);
    await fh.read(buf, 0, n, size - n);
    return buf.toString("utf8");
  } catch {
    return "";
  } finally {
    await fh?.close();
  }
}

function run(file: string, args: readonly string[], signal?: AbortSignal): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { maxBuffer: 64 * 1024 * 1024, ...(signal ? { signal } : {}) },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({
          exitCode: code,
          stdout,
          stderr: stderr || (err && code === 1 ? err.message : ""),
          timedOut: false,
        });
      },
    );
  });
}

/** Scratch folders are `abl-sb-<pid>-<random>` under the scratch root. */
const SCRATCH_PREFIX = "abl-sb-";

/**
 * Removes scratch folders whose process is gone (a run killed mid-trial cannot clean up after
 * itself); folders of live processes, and names this code did not make, are left alone.
 */
export async function sweepScratch(root: string): Promise<number> {
  let removed = 0;
  const names = await readdir(root).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(SCRATCH_PREFIX)) continue;
    const pid = Number(name.slice(SCRATCH_PREFIX.length).split("-")[0]);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    if (pid === process.pid || processAlive(pid)) continue;
    await rm(join(root, name), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

/** Creates the local sandbox environment for one trial (started by `start`). */
export function createLocalEnvironment(
  task: Task,
  trialId: string,
  options: LocalEnvironmentOptions = {},
): Environment {
  const bwrap = options.bwrapPath ?? "bwrap";
  const tmuxBin = options.tmuxPath ?? "tmux";
  let scratch = "";
  let proc: ChildProcess | undefined;
  let procExit: Promise<void> = Promise.resolve();
  let bwrapErr = "";
  let seq = 0;
  let workdir = task.config.environment.workdir ?? "/app";
  const env: Record<string, string> = {};
  let stopped = false;
  /** Host pid of the sandbox's PID-namespace init; killing it ends everything inside. */
  let initPid = 0;

  const sock = () => join(scratch, "ctl", "tmux.sock");
  const tmux = (args: readonly string[], signal?: AbortSignal) =>
    run(tmuxBin, ["-S", sock(), ...args], signal);

  async function execInside(command: string, o: ExecOptions = {}): Promise<ExecResult> {
    if (!proc || stopped) throw new EnvironmentError(`sandbox for ${trialId} is not running`);
    const n = ++seq;
    const dir = join(scratch, "ctl", "exec", String(n));
    const inside = `${CTL}/exec/${n}`;
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "cmd.sh"), command);
    const exports = Object.entries({ ...env, ...(o.env ?? {}) })
      .map(([k, v]) => `export ${k}=${quote(v)}`)
      .join("\n");
    const runner =
      o.timeoutSec === undefined
        ? `setsid bash ${inside}/cmd.sh`
        : `timeout -k 5 ${Math.max(1, Math.ceil(o.timeoutSec))} bash ${inside}/cmd.sh`;
    await writeFile(
      join(dir, "run.sh"),
      [
        exports,
        `cd ${quote(o.cwd ?? workdir)} 2>/dev/null || cd /`,
        `${runner} </dev/null >${inside}/out 2>${inside}/err &`,
        `echo $! > ${inside}/pid`,
        "wait $!",
        `echo $? > ${inside}/rc.tmp && mv ${inside}/rc.tmp ${inside}/rc`,
        "",
      ].join("\n"),
    );
    const started = await tmux(["new-session", "-d", "-s", `x${n}`, `bash ${inside}/run.sh`]);
    if (started.exitCode !== 0) {
      throw new EnvironmentError(`exec in sandbox failed to start: ${started.stderr.trim()}`);
    }
    const deadline =
      o.timeoutSec === undefined
        ? Number.POSITIVE_INFINITY
        : Date.now() + (o.timeoutSec + EXEC_GRACE_SEC) * 1000;
    const began = Date.now();
    for (;;) {
      try {
        await stat(join(dir, "rc"));
        break;
      } catch {
        // Not finished yet.
      }
      if (o.signal?.aborted || Date.now() > deadline || stopped) {
        const pid = (await readTail(join(dir, "pid"), 64)).trim();
        if (pid && !stopped) await tmux(["run-shell", `kill -KILL -- -${pid} 2>/dev/null; true`]);
        if (o.signal?.aborted) throw o.signal.reason;
        if (stopped) throw new EnvironmentError("sandbox stopped during exec");
        return {
          exitCode: 124,
          stdout: await readTail(join(dir, "out"), MAX_EXEC_OUTPUT_BYTES),
          stderr: await readTail(join(dir, "err"), MAX_EXEC_OUTPUT_BYTES),
          timedOut: true,
        };
      }
      await sleep(EXEC_POLL_MS);
    }
    const exitCode = Number((await readTail(join(dir, "rc"), 64)).trim());
    const result = {
      exitCode,
      stdout: await readTail(join(dir, "out"), MAX_EXEC_OUTPUT_BYTES),
      stderr: await readTail(join(dir, "err"), MAX_EXEC_OUTPUT_BYTES),
      timedOut:
        o.timeoutSec !== undefined && exitCode === 124 && Date.now() - began >= o.timeoutSec * 1000,
    };
    await rm(dir, { recursive: true, force: true });
    return result;
  }

  async function applyCopy(step: Extract<DockerStep, { type: "copy" }>, cwd: string) {
    const dest = posix.resolve(cwd, step.dest);
    const intoDir = step.dest.endsWith("/") || step.sources.length > 1;
    for (const src of step.sources) {
      const from = join(task.dir, "environment", src);
      const st = await stat(from).catch(() => undefined);
      if (!st)
        throw new EnvironmentError(`${task.id}: COPY source environment/${src} does not exist`);
      const target = join(scratch, "fs", dest);
      if (st.isDirectory()) {
        await cp(from, target, { recursive: true });
      } else if (intoDir) {
        await mkdir(target, { recursive: true });
        await cp(from, join(target, basename(src)));
      } else {
        await mkdir(join(target, ".."), { recursive: true });
        await cp(from, target);
      }
    }
  }

  async function doStart(signal?: AbortSignal): Promise<void> {
    const root = options.scratchRoot ?? tmpdir();
    await sweepScratch(root);
    scratch = await mkdtemp(join(root, `${SCRATCH_PREFIX}${process.pid}-`));
    await mkdir(join(scratch, "ctl", "xfer"), { recursive: true });
    const dockerfile = join(task.dir, "environment", "Dockerfile");
    let steps: DockerStep[] = [];
    const text = await readFile(dockerfile, "utf8").catch(() => null);
    if (text !== null) steps = parseDockerfile(text, `${task.id}/environment/Dockerfile`);
    // First pass: find every folder that must be writable.
    const tops = new Set(["root", "logs", "tests", "solution"]);
    let cwd = "/";
    let sawWorkdir = false;
    for (const s of steps) {
      if (s.type === "workdir") {
        cwd = posix.resolve(cwd, s.path);
        sawWorkdir = true;
        tops.add(cwd.split("/")[1]!);
      } else if (s.type === "copy") tops.add(posix.resolve(cwd, s.dest).split("/")[1]!);
    }
    if (sawWorkdir) workdir = cwd;
    tops.add(workdir.split("/")[1]!);
    for (const t of tops) {
      if (t === "" || RESERVED.has(t)) {
        throw new EnvironmentError(`${task.id}: the local sandbox cannot make /${t} writable`);
      }
      await mkdir(join(scratch, "fs", t), { recursive: true });
    }
    for (const [k, v] of Object.entries(task.config.environment.env)) env[k] = v;
    // Second pass: place files (host side) and collect ENV.
    cwd = "/";
    const runs: { command: string; cwd: string; env: Record<string, string> }[] = [];
    for (const s of steps) {
      if (s.type === "workdir") {
        cwd = posix.resolve(cwd, s.path);
        await mkdir(join(scratch, "fs", cwd), { recursive: true });
      } else if (s.type === "env") env[s.name] = s.value;
      else if (s.type === "copy") await applyCopy(s, cwd);
      else if (!s.skipLocal) runs.push({ command: s.command, cwd, env: { ...env } });
    }
    await mkdir(join(scratch, "fs", workdir), { recursive: true });
    await mkdir(join(scratch, "fs", "logs", "agent"), { recursive: true });
    await mkdir(join(scratch, "fs", "logs", "verifier"), { recursive: true });

    const args: string[] = ["--tmpfs", "/"];
    for (const d of SYSTEM_DIRS) {
      const host = `/${d}`;
      const st = await lstat(host).catch(() => undefined);
      if (!st) continue;
      if (st.isSymbolicLink()) args.push("--symlink", await readlink(host), host);
      else args.push("--ro-bind", host, host);
    }
    args.push("--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp");
    for (const t of tops) args.push("--bind", join(scratch, "fs", t), `/${t}`);
    args.push("--bind", join(scratch, "ctl"), CTL, "--remount-ro", "/");
    args.push("--unshare-all", "--die-with-parent", "--new-session", "--hostname", "sandbox");
    args.push("--chdir", workdir);
    const base: Record<string, string> = {
      HOME: "/root",
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      TERM: "xterm-256color",
      SHELL: "/bin/bash",
      LANG: "C.UTF-8",
      ...env,
    };
    args.push("--clearenv");
    for (const [k, v] of Object.entries(base)) args.push("--setenv", k, v);
    args.push(tmuxBin, "-S", `${CTL}/tmux.sock`, "-D", "-f", "/dev/null");
    // fd 3 carries bwrap's info JSON with the sandbox init's host pid, so stop can kill the whole
    // PID namespace directly instead of relying on --die-with-parent (which races at startup).
    const child = spawn(bwrap, ["--info-fd", "3", ...args], {
      stdio: ["ignore", "ignore", "pipe", "pipe"],
    });
    proc = child;
    const info = child.stdio[3] as import("node:stream").Readable;
    let infoText = "";
    const gotPid = new Promise<void>((resolve) => {
      info.on("data", (d: Buffer) => {
        infoText += d.toString();
        const m = /"child-pid"\s*:\s*(\d+)/.exec(infoText);
        if (m) {
          initPid = Number(m[1]);
          resolve();
        }
      });
      info.on("close", () => resolve());
    });
    child.stderr?.on("data", (d: Buffer) => {
      if (bwrapErr.length < 4096) bwrapErr += d.toString();
    });
    procExit = new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", (err) => {
        bwrapErr += String(err);
        resolve();
      });
    });
    await gotPid;
    const until = Date.now() + SOCKET_WAIT_MS;
    for (;;) {
      signal?.throwIfAborted();
      if (child.exitCode !== null || child.signalCode !== null || bwrapErr.includes("ENOENT")) {
        throw new EnvironmentError(
          `bwrap exited during start: ${bwrapErr.trim() || `code ${child.exitCode}`}`,
        );
      }
      const ok = await stat(sock()).then(
        () => true,
        () => false,
      );
      if (ok && (await tmux(["list-sessions"])).stderr.includes("no server") === false) break;
      if (Date.now() > until) {
        throw new EnvironmentError(
          `tmux server did not start in the sandbox within ${SOCKET_WAIT_MS} ms: ${bwrapErr.trim()}`,
        );
      }
      await sleep(20);
    }
    for (const r of runs) {
      const res = await execInside(r.command, {
        cwd: r.cwd,
        env: r.env,
        ...(signal ? { signal } : {}),
      });
      if (res.exitCode !== 0) {
        throw new EnvironmentError(
          `${task.id}: Dockerfile RUN failed with exit ${res.exitCode}: ${r.command.slice(0, 200)}\n${res.stderr.slice(-2000)}`,
        );
      }
    }
  }

  const self = {
    kind: "local" as const,
    get workdir() {
      return workdir;
    },
    async start(signal?: AbortSignal) {
      try {
        await doStart(signal);
      } catch (err) {
        if (err instanceof EnvironmentError || signal?.aborted) throw err;
        throw new EnvironmentError(`local sandbox start failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
    },
    exec: execInside,
    async tmux(args: readonly string[], signal?: AbortSignal) {
      if (!proc || stopped) throw new EnvironmentError(`sandbox for ${trialId} is not running`);
      return tmux(args, signal);
    },
    async upload(localPath: string, remotePath: string, signal?: AbortSignal) {
      const n = ++seq;
      const staged = join(scratch, "ctl", "xfer", String(n));
      const st = await stat(localPath);
      await cp(localPath, staged, { recursive: true });
      const cmd = st.isDirectory()
        ? `mkdir -p ${quote(remotePath)} && cp -a ${CTL}/xfer/${n}/. ${quote(remotePath)}/`
        : `mkdir -p "$(dirname ${quote(remotePath)})" && cp -a ${CTL}/xfer/${n} ${quote(remotePath)}`;
      const r = await execInside(cmd, { cwd: "/", ...(signal ? { signal } : {}) });
      await rm(staged, { recursive: true, force: true });
      if (r.exitCode !== 0)
        throw new EnvironmentError(`upload to ${remotePath} failed: ${r.stderr.trim()}`);
    },
    async download(remotePath: string, localPath: string, signal?: AbortSignal) {
      const n = ++seq;
      const r = await execInside(`cp -a ${quote(remotePath)} ${CTL}/xfer/${n}`, {
        cwd: "/",
        ...(signal ? { signal } : {}),
      });
      if (r.exitCode !== 0)
        throw new EnvironmentError(`download of ${remotePath} failed: ${r.stderr.trim()}`);
      await cp(join(scratch, "ctl", "xfer", String(n)), localPath, { recursive: true });
      await rm(join(scratch, "ctl", "xfer", String(n)), { recursive: true, force: true });
    },
    async stop() {
      stopped = true;
      if (initPid > 0) {
        try {
          process.kill(initPid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGKILL");
        await procExit;
      }
      // Nothing may keep this process's event loop alive after stop.
      for (const s of proc?.stdio ?? []) s?.destroy();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    },
  };
  return self;
}
