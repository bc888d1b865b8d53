/**
 * The NATS JetStream bus against a real nats-server (2.9 here): de-duplication, competing
 * workers, redelivery after a worker is SIGKILLed, dead letters, KV compare-and-set, event replay,
 * recovery after a server restart, and rejection of bad input.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  type Bus,
  type BusEvent,
  createNatsBus,
  InvalidNameError,
  KvBucketNotFoundError,
  KvKeyExistsError,
  KvRevisionConflictError,
  PayloadTooLargeError,
  TerminalJobError,
} from "@abl/bus";
import { type NatsServer, startNats } from "@abl/e2e/servers";

const WORKER = fileURLToPath(new URL("./support/bus-worker.ts", import.meta.url));

async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  limitMs = 60_000,
): Promise<void> {
  const end = Date.now() + limitMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Collects every event matching `filter` (from the start) until the returned stop is called. */
function collect(bus: Bus, filter: string): { events: BusEvent[]; stop: () => Promise<void> } {
  const ac = new AbortController();
  const events: BusEvent[] = [];
  const loop = (async () => {
    for await (const e of bus.subscribeEvents(filter, { fromStart: true, signal: ac.signal }))
      events.push(e);
  })();
  return {
    events,
    stop: async () => {
      ac.abort();
      await loop;
    },
  };
}

interface Worker {
  child: ChildProcess;
  pid: number;
  kill(signal: NodeJS.Signals): Promise<void>;
}

async function spawnWorker(
  url: string,
  kind: string,
  ackWaitMs: number,
  maxDeliver: number,
  workMs: number,
): Promise<Worker> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", WORKER, url, kind, String(ackWaitMs), String(maxDeliver), String(workMs)],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  await until(() => out.includes("ready") || child.exitCode !== null, "worker to connect");
  if (child.exitCode !== null) throw new Error(`worker exited with ${child.exitCode}`);
  return {
    child,
    pid: child.pid!,
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill(signal);
      await exited;
    },
  };
}

describe("NATS bus", () => {
  let server: NatsServer;
  let bus: Bus;
  const workers: Worker[] = [];
  before(async () => {
    server = await startNats();
    bus = await createNatsBus({ servers: server.url });
  });
  after(async () => {
    for (const w of workers) await w.kill("SIGKILL");
    await bus?.close();
    await server?.stop();
  });

  it("processes a job published twice with the same id once", async () => {
    assert.deepEqual(await bus.publishJob("dedup", { n: 1 }, { id: "step-abc" }), {
      duplicate: false,
    });
    assert.deepEqual(await bus.publishJob("dedup", { n: 1 }, { id: "step-abc" }), {
      duplicate: true,
    });
    await bus.publishJob("dedup", { n: 2 }, { id: "sentinel" });
    const seen: string[] = [];
    const c = bus.consumeJobs("dedup", async (job) => {
      seen.push(job.id);
    });
    await until(() => seen.includes("sentinel"), "the sentinel job");
    await c.stop();
    assert.deepEqual(seen, ["step-abc", "sentinel"]);
  });

  it("gives each job to exactly one of two competing workers (separate connections)", async () => {
    const other = await createNatsBus({ servers: server.url, name: "second-worker" });
    try {
      const byWorker: Record<string, string[]> = { a: [], b: [] };
      const handler = (w: string) => async (job: { id: string }) => {
        byWorker[w]!.push(job.id);
        // Long enough that one worker cannot drain the queue before the other starts pulling.
        await sleep(100);
      };
      const a = bus.consumeJobs("compete", handler("a"));
      const b = other.consumeJobs("compete", handler("b"));
      for (let i = 0; i < 30; i++) await bus.publishJob("compete", { i }, { id: `c${i}` });
      await until(() => byWorker.a!.length + byWorker.b!.length >= 30, "30 jobs");
      await sleep(300);
      await Promise.all([a.stop(), b.stop()]);
      const all = [...byWorker.a!, ...byWorker.b!];
      assert.equal(all.length, 30, "no job ran twice");
      assert.equal(new Set(all).size, 30);
      assert.ok(
        byWorker.a!.length > 0 && byWorker.b!.length > 0,
        `both workers took jobs: ${JSON.stringify(byWorker)}`,
      );
    } finally {
      await other.close();
    }
  });

  it("redelivers the job of a worker killed with SIGKILL mid-job and completes it exactly once", async () => {
    const kind = "crash";
    const ackWaitMs = 1_000;
    const log = collect(bus, `${kind}.>`);
    try {
      const a = await spawnWorker(server.url, kind, ackWaitMs, 5, 2_000);
      workers.push(a);
      await bus.publishJob(kind, { step: "patch" }, { id: "job-1" });
      await until(
        () => log.events.some((e) => e.subject === `${kind}.started`),
        "worker a to start the job",
      );
      await a.kill("SIGKILL");
      const b = await spawnWorker(server.url, kind, ackWaitMs, 5, 200);
      workers.push(b);
      await until(
        () => log.events.some((e) => e.subject === `${kind}.done`),
        "the job to complete",
      );
      // Give any wrongful second delivery time to show up: several ack waits.
      await sleep(3 * ackWaitMs);
      const done = log.events.filter((e) => e.subject === `${kind}.done`).map((e) => e.data);
      const started = log.events.filter((e) => e.subject === `${kind}.started`).map((e) => e.data);
      assert.deepEqual(done, [{ id: "job-1", pid: b.pid, attempt: 2 }]);
      assert.deepEqual(started[0], { id: "job-1", pid: a.pid, attempt: 1 });
      await b.kill("SIGTERM");
    } finally {
      await log.stop();
    }
  });

  it("dead-letters a job that fails maxDeliver times or throws TerminalJobError", async () => {
    await bus.publishJob("dl", { x: 1 }, { id: "always-fails" });
    await bus.publishJob("dl", { x: 2 }, { id: "terminal" });
    const attempts: Record<string, number[]> = {};
    const c = bus.consumeJobs(
      "dl",
      async (job) => {
        attempts[job.id] = [...(attempts[job.id] ?? []), job.attempt];
        if (job.id === "terminal") throw new TerminalJobError("bad model config");
        throw new Error(`attempt ${job.attempt} failed`);
      },
      { maxDeliver: 3, backoffMs: [20, 40] },
    );
    await until(async () => (await bus.deadLetters("dl")).length === 2, "two dead letters");
    await c.stop();
    const dead = await bus.deadLetters("dl");
    const byId = Object.fromEntries(dead.map((d) => [d.id, d]));
    assert.equal(byId["always-fails"]!.attempts, 3);
    assert.match(byId["always-fails"]!.error, /attempt 3 failed/);
    assert.deepEqual(byId["always-fails"]!.payload, { x: 1 });
    assert.equal(byId.terminal!.attempts, 1);
    assert.deepEqual(attempts, { "always-fails": [1, 2, 3], terminal: [1] });
  });

  it("dead-letters a job whose worker crashed on its last delivery", async () => {
    const kind = "lastcrash";
    const log = collect(bus, `${kind}.>`);
    try {
      const a = await spawnWorker(server.url, kind, 1_000, 1, 60_000);
      workers.push(a);
      await bus.publishJob(kind, { big: false }, { id: "doomed" });
      await until(() => log.events.some((e) => e.subject === `${kind}.started`), "worker to start");
      await a.kill("SIGKILL");
      const handled: string[] = [];
      const c = bus.consumeJobs(kind, async (job) => void handled.push(job.id), {
        ackWaitMs: 1_000,
        maxDeliver: 1,
      });
      await until(
        async () => (await bus.deadLetters(kind)).length === 1,
        "the max-deliveries dead letter",
      );
      await c.stop();
      const [dead] = await bus.deadLetters(kind);
      assert.equal(dead!.id, "doomed");
      assert.deepEqual(dead!.payload, { big: false });
      assert.match(dead!.error, /no ack after 1 deliveries/);
      assert.deepEqual(handled, []);
    } finally {
      await log.stop();
    }
  });

  it("rejects a stale KV writer", async () => {
    const other = await createNatsBus({ servers: server.url, name: "kv-writer-b" });
    try {
      const kvA = await bus.kv("claims");
      const kvB = await other.kv("claims");
      await kvA.create("step.k1", { owner: "none" });
      await assert.rejects(kvB.create("step.k1", { owner: "b" }), KvKeyExistsError);
      const seenA = await kvA.get("step.k1");
      const seenB = await kvB.get("step.k1");
      assert.equal(seenA!.revision, seenB!.revision);
      await kvA.update("step.k1", { owner: "a" }, seenA!.revision);
      await assert.rejects(kvB.update("step.k1", { owner: "b" }, seenB!.revision), (e: unknown) => {
        assert.ok(e instanceof KvRevisionConflictError);
        assert.match(e.message, /claims\/step.k1: revision \d+ is stale/);
        return true;
      });
      assert.deepEqual((await kvB.get("step.k1"))!.value, { owner: "a" });
      await kvA.delete("step.k1");
      assert.equal(await kvB.get("step.k1"), undefined);
      await kvB.create("step.k1", { owner: "b" });
      assert.deepEqual(await kvA.keys("step.*"), ["step.k1"]);
    } finally {
      await other.close();
    }
  });

  it("watches KV changes and replays events from the start by filter", async () => {
    const kv = await bus.kv("watched");
    await kv.put("sweep.s1", { phase: "capture" });
    const ac = new AbortController();
    const changes: Array<[string, string, unknown]> = [];
    const watching = (async () => {
      for await (const c of kv.watch({ filter: "sweep.>", signal: ac.signal }))
        changes.push([c.key, c.operation, c.value]);
    })();
    const seen = (n: number, what: string) =>
      until(() => changes.length >= n, what).catch((err: Error) => {
        ac.abort();
        throw new Error(`${err.message}; the watch saw ${JSON.stringify(changes)}`);
      });
    await seen(1, "the initial value");
    // One revision per key: a value replaced before the watch received it is skipped (the
    // latest always arrives), so each change is awaited before the next is made.
    await kv.put("sweep.s1", { phase: "patch" });
    await seen(2, "the put");
    await kv.delete("sweep.s1");
    await seen(3, "the delete");
    ac.abort();
    await watching;
    assert.deepEqual(changes, [
      ["sweep.s1", "put", { phase: "capture" }],
      ["sweep.s1", "put", { phase: "patch" }],
      ["sweep.s1", "delete", undefined],
    ]);

    await bus.publishEvent("s9.trial", { n: 1 });
    await bus.publishEvent("s8.trial", { n: 2 });
    await bus.publishEvent("s9.summary", { n: 3 });
    const replay = collect(bus, "s9.>");
    await until(() => replay.events.length === 2, "the replay");
    await replay.stop();
    assert.deepEqual(
      replay.events.map((e) => [e.subject, e.data]),
      [
        ["s9.trial", { n: 1 }],
        ["s9.summary", { n: 3 }],
      ],
    );
  });

  it("rejects oversized messages, bad names and unknown buckets with clear errors", async () => {
    const big = "x".repeat(2 * 1024 * 1024);
    await assert.rejects(bus.publishJob("k", big, { id: "big" }), (e: unknown) => {
      assert.ok(e instanceof PayloadTooLargeError);
      assert.match(
        e.message,
        /job k\/big payload is 2097154 bytes, over the bus limit of \d+ bytes/,
      );
      assert.ok(e.limit < 1024 * 1024, "limit derived from the server's 1 MiB max_payload");
      return true;
    });
    await assert.rejects(bus.publishEvent("s.x", big), PayloadTooLargeError);
    const kv = await bus.kv("limits");
    await assert.rejects(kv.put("a", big), PayloadTooLargeError);
    await assert.rejects(bus.publishJob("Not A Kind", {}, { id: "x" }), InvalidNameError);
    await assert.rejects(bus.publishJob("k", {}, { id: "" }), InvalidNameError);
    await assert.rejects(bus.kv("bad.bucket"), /kv bucket name "bad.bucket" must match/);
    await assert.rejects(kv.put("a..b", 1), /kv key "a..b": token 2 "" must match/);
    await assert.rejects(bus.kv("never-created", { create: false }), KvBucketNotFoundError);
    await assert.rejects(bus.publishEvent("abl.event.s.x", {}), /relative to abl.event/);
  });
});

describe("NATS bus across a server restart", () => {
  let server: NatsServer;
  let bus: Bus | undefined;
  before(async () => {
    server = await startNats();
  });
  after(async () => {
    await bus?.close();
    await server?.stop();
  });

  it("recovers: consumers, publishers, KV and event subscriptions work after nats-server restarts", async () => {
    bus = await createNatsBus({ servers: server.url, reconnectTimeWaitMs: 200 });
    const b = bus;
    const seen: string[] = [];
    const c = b.consumeJobs("survive", async (job) => void seen.push(job.id));
    const live: BusEvent[] = [];
    const ac = new AbortController();
    const listening = (async () => {
      for await (const e of b.subscribeEvents("r.>", { signal: ac.signal })) live.push(e);
    })();
    await b.publishJob("survive", {}, { id: "before" });
    await until(() => seen.includes("before"), "the job before the restart");
    const kv = await b.kv("state");
    await kv.put("phase", "before");
    const watched: Array<[string, unknown]> = [];
    const watchAc = new AbortController();
    const watching = (async () => {
      for await (const c of kv.watch({ signal: watchAc.signal }))
        watched.push([c.operation, c.value]);
    })();
    await until(() => watched.length === 1, "the KV watch to start");

    await server.restart(500);

    // Publishing retries while the client reconnects; the same id keeps it exactly-once.
    await until(async () => {
      try {
        await b.publishJob("survive", {}, { id: "after" });
        return true;
      } catch {
        return false;
      }
    }, "a publish after the restart");
    await until(() => seen.includes("after"), "the consumer to resume after the restart");
    assert.deepEqual(seen, ["before", "after"]);
    assert.equal((await kv.get("phase"))!.value, "before");
    await kv.put("phase", "after");
    assert.equal((await kv.get("phase"))!.value, "after");
    await until(() => watched.length === 2, "the KV watch to see the change after the restart");
    watchAc.abort();
    await watching;
    assert.deepEqual(watched, [
      ["put", "before"],
      ["put", "after"],
    ]);
    await until(async () => {
      await b.publishEvent("r.ping", { at: Date.now() });
      return live.length > 0;
    }, "a live event after the restart");
    ac.abort();
    await listening;
    await c.stop();
  });
});
