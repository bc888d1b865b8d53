import type {
  Bus,
  BusEvent,
  ConsumeOptions,
  DeadLetter,
  Job,
  JobConsumer,
  JobHandler,
  Kv,
  KvChange,
  KvEntry,
  KvOptions,
  SubscribeOptions,
} from "./bus.ts";
import { Channel } from "./channel.ts";
import {
  backoffFor,
  DEDUP_WINDOW_MS,
  errorText,
  type ResolvedConsumeOptions,
  resolveConsumeOptions,
} from "./consume-options.ts";
import {
  BusClosedError,
  BusError,
  KvBucketNotFoundError,
  KvKeyExistsError,
  KvRevisionConflictError,
  TerminalJobError,
} from "./errors.ts";
import {
  decodePayload,
  encodePayload,
  MEMORY_MAX_PAYLOAD_BYTES,
  subjectMatches,
  validateBucket,
  validateEventFilter,
  validateEventSubject,
  validateJobId,
  validateKind,
  validateKvFilter,
  validateKvKey,
} from "./names.ts";

interface QueuedJob {
  id: string;
  payload: Uint8Array;
  seq: number;
  deliveries: number;
  readyAt: number;
  /** Bumped on every delivery and expiry, so a late ack of an old delivery is ignored. */
  token: number;
}

class JobQueue {
  ready: QueuedJob[] = [];
  readonly waiters = new Set<() => void>();
  readonly dedup = new Map<string, number>();
  readonly dead: DeadLetter[] = [];
  opts: ResolvedConsumeOptions = resolveConsumeOptions();
  seq = 0;

  constructor(readonly kind: string) {}

  enqueue(job: QueuedJob): void {
    this.ready.push(job);
    this.ready.sort((a, b) => a.readyAt - b.readyAt || a.seq - b.seq);
    for (const w of this.waiters) w();
  }

  deadLetter(job: QueuedJob, error: string): void {
    this.dead.push({
      id: job.id,
      kind: this.kind,
      payload: decodePayload(job.payload),
      attempts: job.deliveries,
      error,
      at: new Date().toISOString(),
    });
  }

  /** Waits for the next deliverable job; `undefined` once `signal` aborts. */
  async take(signal: AbortSignal): Promise<QueuedJob | undefined> {
    for (;;) {
      if (signal.aborted) return undefined;
      const now = Date.now();
      const head = this.ready[0];
      if (head && head.readyAt <= now) {
        this.ready.shift();
        if (head.deliveries >= this.opts.maxDeliver) {
          this.deadLetter(
            head,
            `not delivered again: ${head.deliveries} deliveries reached maxDeliver`,
          );
          continue;
        }
        return head;
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = head ? setTimeout(done, head.readyAt - now) : undefined;
        this.waiters.add(done);
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }
}

interface KvRecord {
  value: Uint8Array;
  revision: number;
}

class MemoryKv implements Kv {
  readonly entries = new Map<string, KvRecord>();
  readonly watchers = new Set<{ filter: string; ch: Channel<KvChange> }>();
  revision = 0;

  constructor(readonly bucket: string) {}

  async get(key: string): Promise<KvEntry | undefined> {
    validateKvKey(key);
    const r = this.entries.get(key);
    return r ? { key, value: decodePayload(r.value), revision: r.revision } : undefined;
  }

  #write(key: string, value: unknown): number {
    const bytes = encodePayload(
      `kv value of ${this.bucket}/${key}`,
      value,
      MEMORY_MAX_PAYLOAD_BYTES,
    );
    const revision = ++this.revision;
    this.entries.set(key, { value: bytes, revision });
    this.#notify({ key, value: decodePayload(bytes), revision, operation: "put" });
    return revision;
  }

  #notify(change: KvChange): void {
    for (const w of this.watchers) if (subjectMatches(w.filter, change.key)) w.ch.push(change);
  }

  async put(key: string, value: unknown): Promise<number> {
    validateKvKey(key);
    return this.#write(key, value);
  }

  async create(key: string, value: unknown): Promise<number> {
    validateKvKey(key);
    if (this.entries.has(key)) throw new KvKeyExistsError(this.bucket, key);
    return this.#write(key, value);
  }

  async update(key: string, value: unknown, revision: number): Promise<number> {
    validateKvKey(key);
    const cur = this.entries.get(key);
    if (!cur || cur.revision !== revision)
      throw new KvRevisionConflictError(this.bucket, key, revision);
    return this.#write(key, value);
  }

  async delete(key: string): Promise<void> {
    validateKvKey(key);
    if (!this.entries.delete(key)) return;
    this.#notify({ key, value: undefined, revision: ++this.revision, operation: "delete" });
  }

  async keys(filter = ">"): Promise<string[]> {
    validateKvFilter(filter);
    return [...this.entries.keys()].filter((k) => subjectMatches(filter, k)).sort();
  }

  watch(opts: { filter?: string; signal?: AbortSignal } = {}): AsyncIterable<KvChange> {
    const filter = validateKvFilter(opts.filter ?? ">");
    const w = { filter, ch: new Channel<KvChange>(opts.signal, () => this.watchers.delete(w)) };
    const current = [...this.entries.entries()]
      .filter(([k]) => subjectMatches(filter, k))
      .sort((a, b) => a[1].revision - b[1].revision);
    for (const [key, r] of current) {
      w.ch.push({ key, value: decodePayload(r.value), revision: r.revision, operation: "put" });
    }
    if (!w.ch.closed) this.watchers.add(w);
    return w.ch;
  }
}

/**
 * A `Bus` inside one process, for `abl run` and tests: the same semantics as the NATS bus
 * (de-duplication window, ack wait, backoff, max deliveries, dead letters, event replay, KV
 * revisions, the 1 MiB message limit), without durability across restarts.
 */
export function createMemoryBus(): Bus {
  const queues = new Map<string, JobQueue>();
  const events: BusEvent[] = [];
  const eventSubs = new Set<{ filter: string; ch: Channel<BusEvent> }>();
  const buckets = new Map<string, MemoryKv>();
  const consumers = new Set<JobConsumer>();
  let closed = false;

  const checkOpen = () => {
    if (closed) throw new BusClosedError("the in-memory bus is closed");
  };
  const queueOf = (kind: string): JobQueue => {
    let q = queues.get(kind);
    if (!q) {
      q = new JobQueue(kind);
      queues.set(kind, q);
    }
    return q;
  };

  function consumeJobs(
    kind: string,
    handler: JobHandler,
    options: ConsumeOptions = {},
  ): JobConsumer {
    checkOpen();
    validateKind(kind);
    const opts = resolveConsumeOptions(options);
    const q = queueOf(kind);
    // Like a JetStream durable consumer, the queue's settings are shared; the latest consumer wins.
    q.opts = opts;
    const stopper = new AbortController();
    const stopSignal = stopper.signal;
    if (options.signal) {
      if (options.signal.aborted) stopper.abort();
      else options.signal.addEventListener("abort", () => stopper.abort(), { once: true });
    }

    const deliver = async (msg: QueuedJob): Promise<void> => {
      msg.deliveries++;
      const token = ++msg.token;
      const attempt = msg.deliveries;
      const ac = new AbortController();
      const onStop = () => ac.abort(new BusError("job consumer is stopping"));
      stopSignal.addEventListener("abort", onStop, { once: true });
      const expire = () => {
        if (msg.token !== token) return;
        msg.token++;
        ac.abort(new BusError(`ack wait of ${opts.ackWaitMs} ms expired on attempt ${attempt}`));
        if (attempt >= opts.maxDeliver)
          q.deadLetter(msg, `ack wait of ${opts.ackWaitMs} ms expired on the last attempt`);
        else q.enqueue({ ...msg, readyAt: Date.now() });
      };
      let timer = setTimeout(expire, opts.ackWaitMs);
      const job: Job = {
        id: msg.id,
        kind,
        payload: decodePayload(msg.payload),
        attempt,
        signal: ac.signal,
        working() {
          if (msg.token !== token) return;
          clearTimeout(timer);
          timer = setTimeout(expire, opts.ackWaitMs);
        },
      };
      try {
        await handler(job);
        if (msg.token === token) msg.token++;
      } catch (err) {
        if (msg.token === token) {
          msg.token++;
          if (err instanceof TerminalJobError) q.deadLetter(msg, errorText(err));
          else if (stopSignal.aborted) q.enqueue({ ...msg, readyAt: Date.now() });
          else if (attempt >= opts.maxDeliver) q.deadLetter(msg, errorText(err));
          else q.enqueue({ ...msg, readyAt: Date.now() + backoffFor(opts, attempt) });
        }
      } finally {
        clearTimeout(timer);
        stopSignal.removeEventListener("abort", onStop);
      }
    };

    const worker = async (): Promise<void> => {
      for (;;) {
        const msg = await q.take(stopSignal);
        if (!msg) return;
        await deliver(msg);
      }
    };
    const done = Promise.all(Array.from({ length: opts.concurrency }, worker)).then(() => {
      consumers.delete(consumer);
    });
    const consumer: JobConsumer = {
      async stop() {
        stopper.abort();
        await done;
      },
      done,
    };
    consumers.add(consumer);
    return consumer;
  }

  return {
    async publishJob(kind, payload, opts) {
      checkOpen();
      validateKind(kind);
      const id = validateJobId(opts?.id);
      const bytes = encodePayload(`job ${kind}/${id} payload`, payload, MEMORY_MAX_PAYLOAD_BYTES);
      const q = queueOf(kind);
      const now = Date.now();
      for (const [k, exp] of q.dedup) if (exp <= now) q.dedup.delete(k);
      if (q.dedup.has(id)) return { duplicate: true };
      q.dedup.set(id, now + DEDUP_WINDOW_MS);
      q.enqueue({ id, payload: bytes, seq: ++q.seq, deliveries: 0, readyAt: now, token: 0 });
      return { duplicate: false };
    },

    consumeJobs,

    async deadLetters(kind) {
      validateKind(kind);
      return [...(queues.get(kind)?.dead ?? [])];
    },

    async publishEvent(subject, event) {
      checkOpen();
      validateEventSubject(subject);
      const bytes = encodePayload(`event ${subject}`, event, MEMORY_MAX_PAYLOAD_BYTES);
      const e: BusEvent = {
        subject,
        data: decodePayload(bytes),
        seq: events.length + 1,
        time: new Date(),
      };
      events.push(e);
      for (const s of eventSubs) if (subjectMatches(s.filter, subject)) s.ch.push(e);
    },

    subscribeEvents(filter, opts: SubscribeOptions = {}) {
      checkOpen();
      validateEventFilter(filter);
      const sub = { filter, ch: new Channel<BusEvent>(opts.signal, () => eventSubs.delete(sub)) };
      if (opts.fromStart)
        for (const e of events) if (subjectMatches(filter, e.subject)) sub.ch.push(e);
      if (!sub.ch.closed) eventSubs.add(sub);
      return sub.ch;
    },

    async kv(bucket, opts: KvOptions = {}) {
      checkOpen();
      validateBucket(bucket);
      let b = buckets.get(bucket);
      if (!b) {
        if (opts.create === false) throw new KvBucketNotFoundError(bucket);
        b = new MemoryKv(bucket);
        buckets.set(bucket, b);
      }
      return b;
    },

    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([...consumers].map((c) => c.stop()));
      for (const s of eventSubs) s.ch.close();
      for (const b of buckets.values()) for (const w of b.watchers) w.ch.close();
    },
  };
}
