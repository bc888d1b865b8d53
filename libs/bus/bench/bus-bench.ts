/**
 * `npm run bench:bus`: pushes N small jobs through a local nats-server with the plain JetStream
 * client (what a user would otherwise write: `js.publish` with a msgID, `consumer.next()`, `ack`)
 * and through `@abl/bus` (`publishJob`, `consumeJobs`), side by side, and prints jobs/s and the
 * ratio. Flags: --jobs N (default 2000).
 */
import { parseArgs } from "node:util";
import { createNatsBus } from "@abl/bus";
import { startNats } from "@abl/e2e/servers";
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";

const { values } = parseArgs({
  options: { jobs: { type: "string", default: "2000" } },
  strict: true,
});
const jobs = Number(values.jobs);
if (!Number.isInteger(jobs) || jobs < 1)
  throw new Error(`--jobs must be a positive integer, got ${values.jobs}`);
const payload = { step: "trial", task: "hello-world", replica: 3, model: "m".repeat(64) };

const server = await startNats();
try {
  // Plain JetStream: its own work-queue stream and durable pull consumer.
  const nc = await connect({ servers: server.url });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "RAW", subjects: ["raw.>"], retention: RetentionPolicy.Workqueue });
  await jsm.consumers.add("RAW", {
    durable_name: "raw",
    ack_policy: AckPolicy.Explicit,
    filter_subject: "raw.job",
  });
  const c = await js.consumers.get("RAW", "raw");
  const raw = async (n: number, tag: string): Promise<[number, number]> => {
    let t0 = performance.now();
    for (let i = 0; i < n; i++)
      await js.publish("raw.job", JSON.stringify(payload), { msgID: `${tag}-${i}` });
    const pub = (performance.now() - t0) / 1000;
    t0 = performance.now();
    for (let k = 0; k < n; ) {
      const m = await c.next({ expires: 2_000 });
      if (!m) continue;
      m.json();
      await m.ackAck();
      k++;
    }
    return [pub, (performance.now() - t0) / 1000];
  };

  const bus = await createNatsBus({ servers: server.url });
  const abl = async (n: number, tag: string): Promise<[number, number]> => {
    let t0 = performance.now();
    for (let i = 0; i < n; i++) await bus.publishJob("bench", payload, { id: `${tag}-${i}` });
    const pub = (performance.now() - t0) / 1000;
    let handled = 0;
    let finish!: () => void;
    const allDone = new Promise<void>((r) => {
      finish = r;
    });
    t0 = performance.now();
    const consumer = bus.consumeJobs("bench", async () => {
      if (++handled === n) finish();
    });
    await allDone;
    const con = (performance.now() - t0) / 1000;
    await consumer.stop();
    return [pub, con];
  };

  // Warm both paths (JIT, connections, streams) before timing.
  await raw(Math.min(200, jobs), "warm-raw");
  await abl(Math.min(200, jobs), "warm-abl");
  const [rawPub, rawCon] = await raw(jobs, "raw");
  const [ablPub, ablCon] = await abl(jobs, "abl");
  await bus.close();
  await nc.close();

  console.log(
    `${jobs} jobs of ${JSON.stringify(payload).length} bytes, nats-server on loopback, one worker`,
  );
  console.log("| step | plain JetStream jobs/s | @abl/bus jobs/s | @abl/bus time vs plain |");
  console.log("|---|---|---|---|");
  console.log(
    `| publish (awaited, with msg id) | ${(jobs / rawPub).toFixed(0)} | ${(jobs / ablPub).toFixed(0)} | ${(ablPub / rawPub).toFixed(2)}x |`,
  );
  console.log(
    `| consume + confirmed ack | ${(jobs / rawCon).toFixed(0)} | ${(jobs / ablCon).toFixed(0)} | ${(ablCon / rawCon).toFixed(2)}x |`,
  );
} finally {
  await server.stop();
}
