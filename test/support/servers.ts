/**
 * Real servers for tests: nats-server (JetStream) and an S3 server (MinIO), each on a random
 * loopback port with a temporary data folder, stopped and removed by `stop()`.
 *
 * Binaries are found through `ABL_NATS_SERVER`, `ABL_MINIO` (set by `.ci/run`), then the cache
 * folder `.ci/run` builds into, then PATH. A missing binary is an error, never a skip: CI installs
 * them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { delimiter, join } from "node:path";

const CACHE_BIN = join(process.env.ABL_CACHE_DIR ?? join(homedir(), ".cache", "abl"), "bin");

/** Finds an executable by env override, the CI cache folder, then PATH. */
export function findBinary(name: string, envVar: string): string {
  const fromEnv = process.env[envVar];
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const candidates = [
    join(CACHE_BIN, name),
    ...(process.env.PATH ?? "").split(delimiter).map((d) => join(d, name)),
  ];
  for (const c of candidates) if (existsSync(c)) return c;
  throw new Error(
    `${name} not found (set ${envVar}, or run .ci/run which installs it into ${CACHE_BIN})`,
  );
}

/** A free TCP port on 127.0.0.1 (bound and released; the race window is accepted in tests). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not become ready within ${timeoutMs} ms`);
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, "127.0.0.1");
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

async function killAndWait(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

/** A running nats-server with JetStream. */
export interface NatsServer {
  readonly url: string;
  readonly port: number;
  /** Stops the server and starts it again on the same port and store (tests reconnects). */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts nats-server with JetStream on a random loopback port and a temporary store folder. */
export async function startNats(): Promise<NatsServer> {
  const bin = findBinary("nats-server", "ABL_NATS_SERVER");
  const dir = await mkdtemp(join(tmpdir(), "abl-nats-"));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = spawn(bin, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dir], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (d) => {
      stderr = (stderr + d).slice(-4000);
    });
    await waitFor(async () => {
      if (child?.exitCode !== null) throw new Error(`nats-server exited: ${stderr}`);
      return tcpOpen(port);
    }, `nats-server on port ${port}`);
  };
  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async restart(downMs = 500) {
      if (child) await killAndWait(child);
      await new Promise((r) => setTimeout(r, downMs));
      await launch();
    },
    async stop() {
      if (child) await killAndWait(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A running S3 server. */
export interface S3Server {
  readonly endpoint: string;
  readonly host: string;
  readonly port: number;
  readonly accessKey: string;
  readonly secretKey: string;
  stop(): Promise<void>;
}

/** Starts MinIO on a random loopback port with a temporary data folder. */
export async function startS3(): Promise<S3Server> {
  const bin = findBinary("minio", "ABL_MINIO");
  const dir = await mkdtemp(join(tmpdir(), "abl-minio-"));
  const port = await freePort();
  const consolePort = await freePort();
  const accessKey = "abltestaccess";
  const secretKey = "abltestsecret-0123456789";
  const child = spawn(
    bin,
    [
      "server",
      "--quiet",
      "--address",
      `127.0.0.1:${port}`,
      "--console-address",
      `127.0.0.1:${consolePort}`,
      dir,
    ],
    {
      stdio: ["ignore", "ignore", "pipe"],
      env: {
        ...process.env,
        MINIO_ROOT_USER: accessKey,
        MINIO_ROOT_PASSWORD: secretKey,
        MINIO_BROWSER: "off",
        MINIO_UPDATE: "off",
      },
    },
  );
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`minio exited: ${stderr}`);
      const res = await fetch(`http://127.0.0.1:${port}/minio/health/ready`);
      return res.ok;
    },
    `minio on port ${port}`,
    60_000,
  );
  return {
    endpoint: `http://127.0.0.1:${port}`,
    host: "127.0.0.1",
    port,
    accessKey,
    secretKey,
    async stop() {
      await killAndWait(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
