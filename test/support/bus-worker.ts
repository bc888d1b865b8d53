/**
 * A job worker process for the bus end-to-end tests (the SIGKILL test kills it mid-job).
 *
 * Usage: node --import tsx bus-worker.ts <nats-url> <kind> <ackWaitMs> <maxDeliver> <workMs>
 *
 * For each job it publishes `<kind>.started` {id, pid, attempt}, works for `workMs` while calling
 * `working()`, then publishes `<kind>.done` {id, pid, attempt} and acks. Prints "ready" once
 * connected; exits on SIGTERM after stopping its consumer.
 */
import { createNatsBus } from "@abl/bus";

const [url, kind, ackWait, maxDeliver, workMs] = process.argv.slice(2);
if (!url || !kind || !ackWait || !maxDeliver || !workMs) {
  console.error("usage: bus-worker.ts <nats-url> <kind> <ackWaitMs> <maxDeliver> <workMs>");
  process.exit(2);
}
const ackWaitMs = Number(ackWait);
const bus = await createNatsBus({ servers: url, name: `bus-worker-${process.pid}` });
const consumer = bus.consumeJobs(
  kind,
  async (job) => {
    await bus.publishEvent(`${kind}.started`, {
      id: job.id,
      pid: process.pid,
      attempt: job.attempt,
    });
    const end = Date.now() + Number(workMs);
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, Math.min(ackWaitMs / 4, 100)));
      job.working();
    }
    await bus.publishEvent(`${kind}.done`, { id: job.id, pid: process.pid, attempt: job.attempt });
  },
  { ackWaitMs, maxDeliver: Number(maxDeliver), backoffMs: [50] },
);
process.stdout.write("ready\n");
process.once("SIGTERM", () => {
  void consumer
    .stop()
    .then(() => bus.close())
    .then(() => process.exit(0));
});
