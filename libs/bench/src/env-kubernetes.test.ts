import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { buildTaskPod, createKubernetesEnvironment, podName } from "./env-kubernetes.ts";
import { LOCAL_TASKS_DIR } from "./local-tasks.ts";
import { loadTask, type Task } from "./task.ts";

interface Recorded {
  method: string;
  path: string;
  body?: unknown;
  command?: string[];
  stdinFiles?: string[];
}

/** One WebSocket frame, server to client (unmasked). */
function frame(payload: Buffer, opcode = 2): Buffer {
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([0x80 | opcode, len])
      : len < 65536
        ? Buffer.alloc(4)
        : Buffer.alloc(10);
  if (len >= 126 && len < 65536) {
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else if (len >= 65536) {
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, payload]);
}

/** Parses masked client frames from a byte stream. */
function frameReader(onFrame: (opcode: number, payload: Buffer) => void) {
  let buf = Buffer.alloc(0);
  return (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0]! & 0x0f;
      let len = buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      const masked = (buf[1]! & 0x80) !== 0;
      const maskLen = masked ? 4 : 0;
      if (buf.length < off + maskLen + len) return;
      const mask = buf.subarray(off, off + maskLen);
      const payload = Buffer.from(buf.subarray(off + maskLen, off + maskLen + len));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
      buf = buf.subarray(off + maskLen + len);
      onFrame(opcode, payload);
    }
  };
}

let tmp: string;
let server: Server;
let kc: KubeConfig;
let task: Task;
const requests: Recorded[] = [];
let conflictOnce = true;
let reads = 0;
const sockets = new Set<Socket>();

function handleExec(req: IncomingMessage, socket: Socket) {
  sockets.add(socket);
  const url = new URL(req.url!, "http://x");
  const command = url.searchParams.getAll("command");
  const rec: Recorded = { method: "EXEC", path: url.pathname, command };
  requests.push(rec);
  const accept = createHash("sha1")
    .update(`${req.headers["sec-websocket-key"]}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
    .digest("base64");
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n`,
  );
  const stdin: Buffer[] = [];
  const send = (channel: number, data: Buffer | string) =>
    socket.write(frame(Buffer.concat([Buffer.from([channel]), Buffer.from(data)])));
  const finish = (code: number, out = "", err = "") => {
    if (out) send(1, out);
    if (err) send(2, err);
    const status =
      code === 0
        ? { metadata: {}, status: "Success" }
        : {
            metadata: {},
            status: "Failure",
            reason: "NonZeroExitCode",
            details: { causes: [{ reason: "ExitCode", message: String(code) }] },
          };
    send(3, JSON.stringify(status));
    socket.write(frame(Buffer.from([0x03, 0xe8]), 8));
    socket.end();
  };
  const respond = () => {
    const script = command.at(-1) ?? "";
    if (command[0] === "true") return finish(0);
    if (command[0] === "tmux") return finish(0, "screen\n");
    if (command[0] === "tar") {
      const dir = join(tmp, `dl-${requests.length}`);
      execFileSync("mkdir", ["-p", join(dir, command[5]!)]);
      execFileSync("sh", ["-c", `echo 1 > ${join(dir, command[5]!, "reward.txt")}`]);
      return finish(
        0,
        execFileSync("tar", ["-C", dir, "-cf", "-", command[5]!]) as unknown as string,
      );
    }
    if (script.includes("tar -xf -")) {
      const archive = Buffer.concat(stdin);
      rec.stdinFiles = execFileSync("tar", ["-tf", "-"], { input: archive })
        .toString()
        .trim()
        .split("\n")
        .sort();
      return finish(0);
    }
    if (script.includes("exit 3")) return finish(3, "", "bad\n");
    return finish(0, "ran\n");
  };
  if (url.searchParams.get("stdin") !== "true") {
    respond();
    return;
  }
  socket.on(
    "data",
    frameReader((opcode, payload) => {
      if (opcode === 8) {
        socket.end();
        return;
      }
      if (payload[0] === 0) stdin.push(payload.subarray(1));
      else if (payload[0] === 255 && payload[1] === 0) respond();
    }),
  );
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "abl-k8s-t-"));
  task = await loadTask(join(LOCAL_TASKS_DIR, "hello-file"));
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url!, "http://x");
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
      requests.push({ method: req.method!, path: url.pathname + url.search, body });
      const json = (code: number, v: unknown) => {
        res.writeHead(code, { "content-type": "application/json" });
        res.end(JSON.stringify(v));
      };
      if (req.method === "POST") {
        if (conflictOnce) {
          conflictOnce = false;
          return json(409, {
            kind: "Status",
            apiVersion: "v1",
            status: "Failure",
            reason: "AlreadyExists",
            code: 409,
          });
        }
        return json(201, body);
      }
      if (req.method === "GET") {
        reads++;
        const phase = reads === 1 ? "Pending" : "Running";
        return json(200, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "p" },
          status: { phase },
        });
      }
      if (req.method === "DELETE")
        return json(200, { kind: "Status", apiVersion: "v1", status: "Success" });
      json(404, {});
    });
  });
  server.on("upgrade", (req, socket) => handleExec(req, socket as Socket));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
});
after(async () => {
  for (const s of sockets) s.destroy();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await rm(tmp, { recursive: true, force: true });
});

describe("kubernetes environment (fake API server)", () => {
  it("builds a Pod from task.toml: image, sleep infinity, no token, resources, WORKDIR kept", () => {
    const pod = buildTaskPod(task, "Hello.Base.r0", { memoryLimitMultiplier: 2 });
    const c = pod.spec!.containers[0]!;
    assert.equal(pod.metadata!.name, "abl-hello-base-r0");
    assert.equal(c.image, "ghcr.io/abliterate/bench-hello-file:1");
    assert.deepEqual(c.command, ["sleep", "infinity"]);
    assert.equal(c.workingDir, undefined);
    assert.equal(pod.spec!.automountServiceAccountToken, false);
    assert.equal(pod.spec!.restartPolicy, "Never");
    assert.deepEqual(c.resources, {
      requests: { cpu: "1", memory: "1024Mi", "ephemeral-storage": "2048Mi" },
      limits: { memory: "2048Mi" },
    });
    assert.ok(podName("x".repeat(100)).length <= 63);
  });

  it("creates (replacing a stale pod), waits, execs, moves files as tar, deletes", async () => {
    const env = createKubernetesEnvironment(task, "hello.base.r0", {
      kubeConfig: kc,
      namespace: "bench",
      pollMs: 5,
    });
    await env.start();
    const ok = await env.exec("echo hi", { cwd: "/app", env: { A: "x y" }, timeoutSec: 9 });
    assert.equal(ok.exitCode, 0);
    assert.equal(ok.stdout, "ran\n");
    const bad = await env.exec("exit 3");
    assert.equal(bad.exitCode, 3);
    assert.equal(bad.stderr, "bad\n");
    assert.equal((await env.tmux(["capture-pane", "-p"])).stdout, "screen\n");
    await env.upload(join(task.dir, "tests"), "/tests");
    const out = join(tmp, "got");
    await env.download("/logs/verifier", out);
    assert.equal(await readFile(join(out, "reward.txt"), "utf8"), "1\n");
    await env.stop();

    const rest = requests.filter((r) => r.method !== "EXEC").map((r) => `${r.method} ${r.path}`);
    assert.equal(rest[0], "POST /api/v1/namespaces/bench/pods");
    assert.equal(
      rest[1],
      "DELETE /api/v1/namespaces/bench/pods/abl-hello-base-r0?gracePeriodSeconds=0",
    );
    assert.equal(rest[2], "POST /api/v1/namespaces/bench/pods");
    assert.ok(rest.includes("GET /api/v1/namespaces/bench/pods/abl-hello-base-r0"));
    assert.equal(
      rest.at(-1),
      "DELETE /api/v1/namespaces/bench/pods/abl-hello-base-r0?gracePeriodSeconds=0",
    );
    const created = requests.find((r) => r.method === "POST")!.body as {
      spec: { containers: { image: string }[] };
    };
    assert.equal(created.spec.containers[0]!.image, "ghcr.io/abliterate/bench-hello-file:1");
    const execs = requests.filter((r) => r.method === "EXEC");
    assert.ok(
      execs.every((e) => e.path === "/api/v1/namespaces/bench/pods/abl-hello-base-r0/exec"),
    );
    assert.deepEqual(execs[0]!.command, ["true"]);
    assert.match(
      execs[1]!.command!.at(-1)!,
      /mkdir -p \/logs\/agent \/logs\/verifier && \(command -v tmux/,
    );
    assert.equal(
      execs[2]!.command!.at(-1),
      "export A='x y'; cd '/app' && timeout -k 5 9 bash -c 'echo hi'",
    );
    const upload = execs.find((e) => e.stdinFiles)!;
    assert.deepEqual(upload.stdinFiles, ["./", "./test.sh", "./test_outputs.py"]);
    assert.deepEqual(execs.at(-1)!.command, ["tar", "-cf", "-", "-C", "/logs", "verifier"]);
  });

  it("refuses a task without docker_image", async () => {
    const noImage: Task = {
      ...task,
      config: { ...task.config, environment: { ...task.config.environment, dockerImage: null } },
    };
    assert.throws(() => buildTaskPod(noImage, "t", {}), /needs \[environment\].docker_image/);
  });
});
