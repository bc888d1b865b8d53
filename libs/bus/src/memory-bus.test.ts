import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Bus, BusEvent, Job, KvChange } from "./bus.ts";
import {
  BusClosedError,
  InvalidNameError,
  KvBucketNotFoundError,
  KvKeyExistsError,
  KvRevisionConflictError,
  PayloadTooLargeError,
  TerminalJobError,
} from "./errors.ts";
import { createMemoryBus } from "./memory-bus.ts";

/** Polls until `cond` holds; fails the test (rather than hanging) after a generous limit. */
async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  limitMs = 20_000,
): Promise<void> {
  const end = Date.now() + limitMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function take<T>(it: AsyncIterable<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  if (n === 0) return out;
  for await (const x of it) {
    out.push(x);
    if (out.length >= n) break;
  }
  return out;
}

async function withBus(fn: (bus: Bus) => Promise<void>): Promise<void> {
  const bus = createMemoryBus();
  try {
    await fn(bus);
  } finally {
    await bus.close();
  }
}

describe("in-memory bus: job queues", () => {
  it("processes a job published twice with the same id once", () =>
    withBus(async (bus) => {
      assert.deepEqual(await bus.publishJob("patch", { n: 1 }, { id: "step-1" }), {
        duplicate: false,
      });
      assert.deepEqual(await bus.publishJob("patch", { n: 1 }, { id: "step-1" }), {
        duplicate: true,
      });
      await bus.publishJob("patch", { n: 2 }, { id: "sentinel" });
      const seen: string[] = [];
      const c = bus.consumeJobs("patch", async (job) => {
        seen.push(job.id);
      });
      await until(() => seen.includes("sentinel"), "the sentinel job");
      await c.stop();
      assert.deepEqual(seen, ["step-1", "sentinel"]);
    }));

  it("gives each job to exactly one of two competing workers", () =>
    withBus(async (bus) => {
      const byWorker: Record<string, string[]> = { a: [], b: [] };
      const handler = (w: string) => async (job: Job) => {
        byWorker[w]!.push(job.id);
        await new Promise((r) => setTimeout(r, 5));
      };
      const a = bus.consumeJobs("trial", handler("a"), { concurrency: 2 });
      const b = bus.consumeJobs("trial", handler("b"), { concurrency: 2 });
      for (let i = 0; i < 40; i++) await bus.publishJob("trial", { i }, { id: `t${i}` });
      await until(() => byWorker.a!.length + byWorker.b!.length >= 40, "40 jobs");
      await Promise.all([a.stop(), b.stop()]);
      const all = [...byWorker.a!, ...byWorker.b!].sort();
      assert.equal(all.length, 40);
      assert.equal(new Set(all).size, 40);
      assert.ok(byWorker.a!.length > 0 && byWorker.b!.length > 0, "both workers took jobs");
    }));

  it("retries a failing job with backoff, then dead-letters it after maxDeliver", () =>
    withBus(async (bus) => {
      const attempts: number[] = [];
      await bus.publishJob("capture", { model: "m" }, { id: "flaky" });
      await bus.publishJob("capture", { model: "x" }, { id: "broken" });
      const c = bus.consumeJobs(
        "capture",
        async (job) => {
          if (job.id === "flaky") {
            attempts.push(job.attempt);
            if (job.attempt < 3) throw new Error(`transient ${job.attempt}`);
            return;
          }
          throw new Error("always fails");
        },
        { maxDeliver: 3, backoffMs: [5, 10] },
      );
      await until(
        async () => (await bus.deadLetters("capture")).length === 1 && attempts.length === 3,
        "retries",
      );
      await c.stop();
      assert.deepEqual(attempts, [1, 2, 3]);
      const [dead] = await bus.deadLetters("capture");
      assert.equal(dead!.id, "broken");
      assert.equal(dead!.attempts, 3);
      assert.deepEqual(dead!.payload, { model: "x" });
      assert.match(dead!.error, /always fails/);
    }));

  it("dead-letters at once on TerminalJobError", () =>
    withBus(async (bus) => {
      await bus.publishJob("patch", {}, { id: "bad-input" });
      const c = bus.consumeJobs("patch", async () => {
        throw new TerminalJobError("config.json has no hidden_size");
      });
      await until(async () => (await bus.deadLetters("patch")).length === 1, "dead letter");
      await c.stop();
      const [dead] = await bus.deadLetters("patch");
      assert.equal(dead!.attempts, 1);
      assert.match(dead!.error, /TerminalJobError: config.json has no hidden_size/);
    }));

  it("redelivers a job whose handler stops heartbeating, and aborts the stale delivery", () =>
    withBus(async (bus) => {
      const done: Array<{ id: string; attempt: number }> = [];
      let staleAborted = false;
      await bus.publishJob("serve", {}, { id: "hang-once" });
      const c = bus.consumeJobs(
        "serve",
        async (job) => {
          if (job.attempt === 1) {
            await new Promise<void>((resolve) =>
              job.signal.addEventListener("abort", () => resolve(), { once: true }),
            );
            staleAborted = true;
            throw job.signal.reason;
          }
          done.push({ id: job.id, attempt: job.attempt });
        },
        { ackWaitMs: 150, concurrency: 2 },
      );
      await until(() => done.length === 1, "the redelivery");
      await c.stop();
      assert.deepEqual(done, [{ id: "hang-once", attempt: 2 }]);
      assert.equal(staleAborted, true);
    }));

  it("keeps a long job with working() heartbeats from being redelivered", () =>
    withBus(async (bus) => {
      const attempts: number[] = [];
      await bus.publishJob("long", {}, { id: "slow" });
      const c = bus.consumeJobs(
        "long",
        async (job) => {
          attempts.push(job.attempt);
          for (let i = 0; i < 12; i++) {
            await new Promise((r) => setTimeout(r, 50));
            job.working();
          }
        },
        { ackWaitMs: 150, concurrency: 2 },
      );
      await until(() => attempts.length >= 1, "start");
      await new Promise((r) => setTimeout(r, 800));
      await c.stop();
      assert.deepEqual(attempts, [1]);
    }));

  it("hands an in-flight job back when its consumer stops", () =>
    withBus(async (bus) => {
      const finished: Array<{ worker: string; attempt: number }> = [];
      await bus.publishJob("k", {}, { id: "j" });
      let started = false;
      const a = bus.consumeJobs("k", async (job) => {
        started = true;
        await new Promise<void>((resolve) =>
          job.signal.addEventListener("abort", () => resolve(), { once: true }),
        );
        throw job.signal.reason;
      });
      await until(() => started, "worker a to start");
      await a.stop();
      const b = bus.consumeJobs("k", async (job) => {
        finished.push({ worker: "b", attempt: job.attempt });
      });
      await until(() => finished.length === 1, "worker b");
      await b.stop();
      assert.deepEqual(finished, [{ worker: "b", attempt: 2 }]);
      assert.deepEqual(await bus.deadLetters("k"), []);
    }));

  it("rejects bad names, oversized payloads and use after close", async () => {
    const bus = createMemoryBus();
    await assert.rejects(bus.publishJob("Bad Kind", {}, { id: "x" }), InvalidNameError);
    await assert.rejects(bus.publishJob("k", {}, { id: "has space" }), InvalidNameError);
    await assert.rejects(
      bus.publishJob("k", "x".repeat(2 * 1024 * 1024), { id: "big" }),
      (e: unknown) => {
        assert.ok(e instanceof PayloadTooLargeError);
        assert.match(e.message, /2097154 bytes, over the bus limit of 1048576 bytes/);
        return true;
      },
    );
    await assert.rejects(bus.publishJob("k", { f: () => 1, n: 1n }, { id: "x" }), InvalidNameError);
    assert.throws(
      () => bus.consumeJobs("k", async () => {}, { concurrency: 0 }),
      /concurrency must be an integer >= 1, got 0/,
    );
    await bus.close();
    await assert.rejects(bus.publishJob("k", {}, { id: "x" }), BusClosedError);
  });
});

describe("in-memory bus: events", () => {
  it("replays from the start when asked and delivers live events by filter", () =>
    withBus(async (bus) => {
      await bus.publishEvent("sweep-1.trial", { n: 1 });
      await bus.publishEvent("sweep-2.trial", { n: 2 });
      const replay = take(bus.subscribeEvents("sweep-1.>", { fromStart: true }), 2);
      const liveAc = new AbortController();
      const liveOnly: BusEvent[] = [];
      const live = (async () => {
        for await (const e of bus.subscribeEvents("*.trial", { signal: liveAc.signal }))
          liveOnly.push(e);
      })();
      await bus.publishEvent("sweep-1.trial", { n: 3 });
      const got = await replay;
      assert.deepEqual(
        got.map((e) => [e.subject, e.data]),
        [
          ["sweep-1.trial", { n: 1 }],
          ["sweep-1.trial", { n: 3 }],
        ],
      );
      liveAc.abort();
      await live;
      assert.deepEqual(
        liveOnly.map((e) => e.data),
        [{ n: 3 }],
      );
      await assert.rejects(bus.publishEvent("abl.event.x", {}), /relative to abl.event/);
      assert.throws(() => bus.subscribeEvents("a.>.b"), InvalidNameError);
    }));
});

describe("in-memory bus: KV", () => {
  it("creates, updates on revision, rejects stale writers, deletes and watches", () =>
    withBus(async (bus) => {
      const kv = await bus.kv("sweeps");
      const r1 = await kv.create("s1.state", { phase: "capture" });
      await assert.rejects(kv.create("s1.state", {}), KvKeyExistsError);
      const a = await kv.get("s1.state");
      const b = await kv.get("s1.state");
      assert.equal(a!.revision, r1);
      const r2 = await kv.update("s1.state", { phase: "patch" }, a!.revision);
      await assert.rejects(kv.update("s1.state", { phase: "stale" }, b!.revision), (e: unknown) => {
        assert.ok(e instanceof KvRevisionConflictError);
        assert.match(e.message, /revision 1 is stale/);
        return true;
      });
      assert.deepEqual(await kv.get("s1.state"), {
        key: "s1.state",
        value: { phase: "patch" },
        revision: r2,
      });

      const ac = new AbortController();
      const changes: KvChange[] = [];
      const watching = (async () => {
        for await (const ch of kv.watch({ filter: "s1.>", signal: ac.signal })) {
          changes.push(ch);
          if (changes.length === 3) ac.abort();
        }
      })();
      await kv.put("s1.claim", "worker-a");
      await kv.delete("s1.claim");
      await watching;
      assert.deepEqual(
        changes.map((c) => [c.key, c.operation, c.value]),
        [
          ["s1.state", "put", { phase: "patch" }],
          ["s1.claim", "put", "worker-a"],
          ["s1.claim", "delete", undefined],
        ],
      );
      assert.equal(await kv.get("s1.claim"), undefined);
      assert.deepEqual(await kv.keys(), ["s1.state"]);
      await kv.create("s1.claim", "worker-b");
      assert.deepEqual(await kv.keys("s1.*"), ["s1.claim", "s1.state"]);
    }));

  it("rejects unknown buckets when not creating, and bad bucket names and keys", () =>
    withBus(async (bus) => {
      await assert.rejects(bus.kv("missing", { create: false }), KvBucketNotFoundError);
      await assert.rejects(bus.kv("bad.name"), InvalidNameError);
      const kv = await bus.kv("ok");
      for (const key of ["", "a..b", ".a", "a.", "sp ace", "a.*"]) {
        await assert.rejects(kv.put(key, 1), InvalidNameError, key);
      }
    }));
});
