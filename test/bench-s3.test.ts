import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  createLocalEnvironment,
  createOracleAgent,
  LOCAL_TASKS_DIR,
  loadTaskDir,
  runSuite,
  type SuiteEvent,
  type SuiteSummary,
} from "@abl/bench";
import { type S3Server, startS3 } from "@abl/e2e/servers";
import { createS3Store } from "@abl/store";

let s3: S3Server;
before(async () => {
  s3 = await startS3();
});
after(async () => {
  await s3?.stop();
});

async function drain(
  gen: AsyncGenerator<SuiteEvent, SuiteSummary>,
): Promise<[SuiteEvent[], SuiteSummary]> {
  const events: SuiteEvent[] = [];
  for (;;) {
    const n = await gen.next();
    if (n.done) return [events, n.value];
    events.push(n.value);
  }
}

describe("bench records in S3 (MinIO)", () => {
  it("writes trial records to a bucket and resumes from them", async () => {
    const store = createS3Store({
      endpoint: s3.endpoint,
      accessKey: s3.accessKey,
      secretKey: s3.secretKey,
      bucket: "abl-bench",
      prefix: "sweeps/s1",
    });
    const tasks = await loadTaskDir(LOCAL_TASKS_DIR, { only: ["hello-file"] });
    const opts = {
      runId: "s3run",
      tasks,
      variants: [{ name: "oracle", agent: createOracleAgent() }],
      replicas: 2,
      store,
      envFactory: createLocalEnvironment,
    };
    const [, summary] = await drain(runSuite(opts));
    assert.equal(summary.byVariant.oracle!.passed, 2);
    const keys: string[] = [];
    for await (const o of store.list("runs/s3run/trials/")) keys.push(o.key);
    const results = keys.filter((k) => k.endsWith("/result.json"));
    assert.equal(results.length, 2);
    assert.ok(keys.some((k) => k.endsWith("/verifier/ctrf.json")));
    const result = JSON.parse(new TextDecoder().decode(await store.getBytes(results[0]!)));
    assert.equal(result.outcome, "passed");
    const [events, again] = await drain(runSuite(opts));
    assert.equal(again.skipped, 2);
    assert.equal(events.filter((e) => e.type === "trial_started").length, 0);
  });
});
