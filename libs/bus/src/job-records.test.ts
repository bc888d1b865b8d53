import assert from "node:assert/strict";
import { test } from "node:test";
import {
  getJobRecord,
  type JobRecord,
  startStepJob,
  updateJobRecord,
  watchJobRecord,
} from "./job-records.ts";
import { createMemoryBus } from "./memory-bus.ts";

const KEY = "a".repeat(64);

test("startStepJob: queued once, duplicates collapse, failed jobs requeue, existing outputs are cached", async () => {
  const bus = createMemoryBus();
  try {
    const kv = await bus.kv("step_jobs");
    const job = { stepKey: KEY, outputKey: `models/${KEY}` };
    const seen: unknown[] = [];
    const consumer = bus.consumeJobs("demo", async (j) => {
      seen.push(j.payload);
    });
    let exists = false;
    const start = () => startStepJob(bus, kv, "demo", job, async () => exists);

    assert.deepEqual(await start(), { jobId: KEY, stepKey: KEY, cached: false });
    const queued = (await getJobRecord(kv, KEY))!;
    assert.equal(queued.state, "queued");
    assert.equal(queued.outputKey, job.outputKey);
    // A second start while the first is live neither rewrites the record nor queues twice.
    await start();
    assert.equal((await getJobRecord(kv, KEY))!.updatedAt, queued.updatedAt);
    // The bus takes the step key as the message id: the second publish is a duplicate.
    for (let i = 0; i < 50 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(seen, [job]);

    await updateJobRecord(kv, KEY, queued, { state: "failed", message: "boom" });
    await start();
    assert.equal((await getJobRecord(kv, KEY))!.state, "queued");

    exists = true;
    assert.deepEqual(await start(), { jobId: KEY, stepKey: KEY, cached: true });
    const cached = (await getJobRecord(kv, KEY))!;
    assert.equal(cached.state, "succeeded");
    assert.equal(cached.cached, true);
    assert.equal(cached.message, "served from the store");
    await consumer.stop();
  } finally {
    await bus.close();
  }
});

test("watchJobRecord yields the current record, then each update up to a terminal one", async () => {
  const bus = createMemoryBus();
  try {
    const kv = await bus.kv("step_jobs");
    const first = await updateJobRecord(kv, KEY, undefined, { state: "running", total: 3 });
    const ac = new AbortController();
    const got: JobRecord[] = [];
    const watching = (async () => {
      for await (const r of watchJobRecord(kv, KEY, first, ac.signal)) got.push(r);
    })();
    let r = first;
    for (let done = 1; done <= 3; done++) {
      await new Promise((res) => setTimeout(res, 20));
      r = await updateJobRecord(kv, KEY, r, {
        done,
        ...(done === 3 ? { state: "succeeded" } : {}),
      });
    }
    await watching;
    assert.deepEqual(
      got.map((x) => [x.state, x.done]),
      [
        ["running", 0],
        ["running", 1],
        ["running", 2],
        ["succeeded", 3],
      ],
    );
    // A finished job's watch ends at once.
    const after: JobRecord[] = [];
    for await (const x of watchJobRecord(kv, KEY, r)) after.push(x);
    assert.equal(after.length, 1);
  } finally {
    await bus.close();
  }
});
