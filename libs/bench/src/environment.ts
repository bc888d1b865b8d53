/**
 * One interface over the places a trial runs (Harbor's BaseEnvironment, reference/terminal-bench.md
 * §5): a bubblewrap sandbox on this machine, a Docker container, or a Kubernetes Pod. The agent
 * drives a tmux session inside it through {@link Environment.tmux}; the verifier and the oracle
 * use exec and file transfer.
 */

/** Result of a command run inside the environment. */
export interface ExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The command was killed by its timeout. */
  readonly timedOut: boolean;
}

/** Options of {@link Environment.exec}. */
export interface ExecOptions {
  /** Kill the command after this many seconds (default: no limit). */
  readonly timeoutSec?: number;
  readonly env?: Readonly<Record<string, string>>;
  /** Working directory; default the image's WORKDIR. */
  readonly cwd?: string;
  readonly signal?: AbortSignal;
}

/** A started trial environment. */
export interface Environment {
  readonly kind: "local" | "docker" | "kubernetes";
  /** Working directory commands start in when known here (local), else null (the image's). */
  readonly workdir: string | null;
  /** Starts it (image pull, sandbox setup, task files in place); throws EnvironmentError. */
  start(signal?: AbortSignal): Promise<void>;
  /** Runs `bash -c command` inside. */
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  /** Runs a tmux client command against the in-environment tmux server. */
  tmux(args: readonly string[], signal?: AbortSignal): Promise<ExecResult>;
  /** Copies a local file or folder to `remotePath` (created; a folder's contents go inside). */
  upload(localPath: string, remotePath: string, signal?: AbortSignal): Promise<void>;
  /** Copies a remote file or folder to `localPath`. */
  download(remotePath: string, localPath: string, signal?: AbortSignal): Promise<void>;
  /** Tears everything down; safe to call more than once and after a failed start. */
  stop(): Promise<void>;
}

/** Builds an environment for one trial of a task. */
export type EnvironmentFactory = (task: import("./task.ts").Task, trialId: string) => Environment;
