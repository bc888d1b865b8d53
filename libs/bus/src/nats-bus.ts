import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import { type KV, Kvm, type KvWatchEntry } from "@nats-io/kv";
import { connect, type NatsConnection, nanos } from "@nats-io/transport-node";
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
  HEADER_ALLOWANCE_BYTES,
  validateBucket,
  validateEventFilter,
  validateEventSubject,
  validateJobId,
  validateKind,
  validateKvFilter,
  validateKvKey,
} from "./names.ts";

/** Work-queue stream of all jobs; subjects `abl.job.<kind>`. */
export const JOBS_STREAM = "ABL_JOBS";
/** Event log stream; subjects `abl.event.<sweep>.<kind>`. */
export const EVENTS_STREAM = "ABL_EVENTS";
/** KV bucket holding dead-letter records, keyed `<kind>.<stream sequence>`. */
export const DEAD_LETTER_BUCKET = "ABL_DEAD";
/** How long events are kept: longer than any sweep, so a report can replay a whole sweep. */
export const EVENTS_MAX_AGE_MS = 30 * 24 * 60 * 60 * 1000;
/**
 * Longest wait of one pull request. It bounds how long `stop()` waits for idle workers; an idle
 * worker costs one small request per period.
 */
export const PULL_EXPIRES_MS = 2_000;
/** Pause after a failed pull (server down, reconnecting) before trying again. */
const PULL_RETRY_MS = 250;
/** JetStream error: wrong last sequence (a compare-and-set write lost). */
const WRONG_LAST_SEQUENCE = 10071;
/** JetStream error: stream name in use with a different configuration. */
const STREAM_NAME_IN_USE = 10058;

/** Pause before reopening a subscription that ended or failed (server restarting). */
const RESUBSCRIBE_DELAY_MS = 250;

/**
 * Feeds a channel from a server-side iterator, reopening it (the `open` callback resumes from
 * the last position it saw) after it ends, fails or a reconnect stops it, until the channel
 * closes. Errors other than connection trouble (a JetStream API error: bad filter, deleted
 * stream) end the channel with that error.
 */
async function pump<M>(
  ch: { readonly closed: boolean },
  reconnects: Set<() => void>,
  open: () => Promise<{ messages: AsyncIterable<M>; stop: () => void }>,
  onMessage: (m: M) => void,
  setStop: (stop: () => void) => void,
): Promise<void> {
  while (!ch.closed) {
    let current: { messages: AsyncIterable<M>; stop: () => void };
    try {
      current = await open();
    } catch (err) {
      if (err instanceof JetStreamApiError) throw err;
      if (ch.closed) return;
      await new Promise((r) => setTimeout(r, RESUBSCRIBE_DELAY_MS));
      continue;
    }
    const stopCurrent = () => current.stop();
    reconnects.add(stopCurrent);
    setStop(stopCurrent);
    if (ch.closed) current.stop();
    try {
      for await (const m of current.messages) onMessage(m);
    } catch {
      // Reopened below.
    } finally {
      reconnects.delete(stopCurrent);
    }
    if (!ch.closed) await new Promise((r) => setTimeout(r, RESUBSCRIBE_DELAY_MS));
  }
}

/** Options of {@link createNatsBus}. */
export interface NatsBusOptions {
  /** Server URL(s), e.g. `nats://127.0.0.1:4222`. */
  servers: string | string[];
  /** Client name shown in server monitoring. */
  name?: string;
  /** Milliseconds between reconnect attempts (default 500); attempts never stop. */
  reconnectTimeWaitMs?: number;
  /** Storage of the streams (default file: jobs and events survive a server restart). */
  storage?: "file" | "memory";
}

const enc = new TextEncoder();

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

async function ensureStream(
  jsm: JetStreamManager,
  cfg: Partial<StreamConfig> & { name: string },
): Promise<void> {
  try {
    await jsm.streams.add(cfg);
  } catch (err) {
    if (!isApiError(err, STREAM_NAME_IN_USE))
      throw new BusError(`creating stream ${cfg.name}`, { cause: err });
    const { name, ...update } = cfg;
    await jsm.streams.update(name, update);
  }
}

/**
 * A `Bus` on NATS JetStream (works with nats-server 2.9+). Jobs go to the work-queue stream
 * `ABL_JOBS` (message id = job id, de-duplicated within {@link DEDUP_WINDOW_MS}) and are pulled
 * by one durable consumer per kind (`abl-<kind>`) shared by every worker, so each job reaches one
 * worker at a time; unacked deliveries are redelivered after the ack wait. Events are kept in
 * `ABL_EVENTS`; KV buckets are JetStream KV. Reconnects forever after the server goes away.
 */
export async function createNatsBus(options: NatsBusOptions): Promise<Bus> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: options.servers,
      name: options.name ?? "abl",
      maxReconnectAttempts: -1,
      reconnectTimeWait: options.reconnectTimeWaitMs ?? 500,
    });
  } catch (err) {
    throw new BusError(`cannot connect to NATS at ${String(options.servers)}`, { cause: err });
  }
  const js: JetStreamClient = jetstream(nc);
  const jsm: JetStreamManager = await jetstreamManager(nc);
  const storage = options.storage === "memory" ? StorageType.Memory : StorageType.File;
  await ensureStream(jsm, {
    name: JOBS_STREAM,
    subjects: ["abl.job.>"],
    retention: RetentionPolicy.Workqueue,
    storage,
    duplicate_window: nanos(DEDUP_WINDOW_MS),
  });
  await ensureStream(jsm, {
    name: EVENTS_STREAM,
    subjects: ["abl.event.>"],
    retention: RetentionPolicy.Limits,
    storage,
    max_age: nanos(EVENTS_MAX_AGE_MS),
  });
  const kvm = new Kvm(js);
  const deadKv: KV = await kvm.create(DEAD_LETTER_BUCKET, { history: 1 });
  const consumers = new Set<JobConsumer>();
  const channels = new Set<Channel<unknown>>();
  // Server-side iterators (ordered consumers, KV watchers) can go quiet after the server
  // restarts; on every reconnect they are stopped and reopened where they left off.
  const reconnects = new Set<() => void>();
  void (async () => {
    for await (const st of nc.status()) {
      if (st.type === "reconnect") for (const f of reconnects) f();
    }
  })().catch(() => undefined);
  let closed = false;

  /** Largest JSON body we send: the server's `max_payload` less room for headers. */
  const payloadLimit = (): number => (nc.info?.max_payload ?? 1024 * 1024) - HEADER_ALLOWANCE_BYTES;
  const checkOpen = () => {
    if (closed) throw new BusClosedError("the NATS bus is closed");
  };

  async function writeDeadLetter(kind: string, seq: number, letter: DeadLetter): Promise<void> {
    try {
      await deadKv.create(`${kind}.${seq}`, enc.encode(JSON.stringify(letter)));
    } catch (err) {
      // Another worker (or an advisory handler) recorded this delivery already.
      if (isApiError(err, WRONG_LAST_SEQUENCE)) return;
      throw err;
    }
  }

  async function ensureConsumer(
    kind: string,
    durable: string,
    ackWaitMs: number,
    maxDeliver: number,
  ): Promise<void> {
    const cfg = {
      durable_name: durable,
      filter_subject: `abl.job.${kind}`,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(ackWaitMs),
      max_deliver: maxDeliver,
    };
    try {
      const info = await jsm.consumers.info(JOBS_STREAM, durable);
      if (info.config.ack_wait !== cfg.ack_wait || info.config.max_deliver !== cfg.max_deliver) {
        await jsm.consumers.update(JOBS_STREAM, durable, {
          ack_wait: cfg.ack_wait,
          max_deliver: cfg.max_deliver,
        });
      }
    } catch (err) {
      if (!(err instanceof JetStreamApiError))
        throw new BusError(`reading consumer ${durable}`, { cause: err });
      await jsm.consumers.add(JOBS_STREAM, cfg);
    }
  }

  function consumeJobs(
    kind: string,
    handler: JobHandler,
    options: ConsumeOptions = {},
  ): JobConsumer {
    checkOpen();
    validateKind(kind);
    const opts = resolveConsumeOptions(options);
    const durable = `abl-${kind}`;
    const stopper = new AbortController();
    const stopSignal = stopper.signal;
    if (options.signal) {
      if (options.signal.aborted) stopper.abort();
      else options.signal.addEventListener("abort", () => stopper.abort(), { once: true });
    }
    const sleep = (ms: number) =>
      new Promise<void>((r) => {
        const t = setTimeout(done, ms);
        function done() {
          clearTimeout(t);
          stopSignal.removeEventListener("abort", done);
          r();
        }
        stopSignal.addEventListener("abort", done, { once: true });
      });

    const handle = async (m: JsMsg): Promise<void> => {
      const id = m.headers?.get("Nats-Msg-Id") ?? `seq-${m.seq}`;
      const attempt = m.info.deliveryCount;
      let payload: unknown;
      const ac = new AbortController();
      const onStop = () => ac.abort(new BusError("job consumer is stopping"));
      stopSignal.addEventListener("abort", onStop, { once: true });
      // Mirror the server's ack wait locally so the handler learns when its delivery is lost.
      const expire = () =>
        ac.abort(new BusError(`ack wait of ${opts.ackWaitMs} ms expired on attempt ${attempt}`));
      let timer = setTimeout(expire, opts.ackWaitMs);
      try {
        payload = decodePayload(m.data);
      } catch (err) {
        clearTimeout(timer);
        stopSignal.removeEventListener("abort", onStop);
        await writeDeadLetter(kind, m.seq, {
          id,
          kind,
          payload: new TextDecoder().decode(m.data),
          attempts: attempt,
          error: `payload is not JSON: ${errorText(err)}`,
          at: new Date().toISOString(),
        });
        m.term();
        return;
      }
      const job: Job = {
        id,
        kind,
        payload,
        attempt,
        signal: ac.signal,
        working() {
          if (ac.signal.aborted) return;
          try {
            m.working();
          } catch {
            // Connection closed: the heartbeat is lost and the ack-wait timer below still runs,
            // so the handler learns through `signal` if the job is taken back.
            return;
          }
          clearTimeout(timer);
          timer = setTimeout(expire, opts.ackWaitMs);
        },
      };
      try {
        await handler(job);
        clearTimeout(timer);
        // A confirmed ack: if it cannot be confirmed (connection lost) the job is redelivered,
        // which at-least-once consumers must tolerate anyway.
        await m.ackAck().catch(() => false);
      } catch (err) {
        clearTimeout(timer);
        const terminal = err instanceof TerminalJobError;
        if (!terminal && stopSignal.aborted) {
          m.nak();
        } else if (terminal || attempt >= opts.maxDeliver) {
          await writeDeadLetter(kind, m.seq, {
            id,
            kind,
            payload,
            attempts: attempt,
            error: errorText(err),
            at: new Date().toISOString(),
          }).catch(() => undefined);
          m.term();
        } else {
          m.nak(backoffFor(opts, attempt));
        }
      } finally {
        stopSignal.removeEventListener("abort", onStop);
      }
    };

    const worker = async (): Promise<void> => {
      let consumer: Awaited<ReturnType<typeof js.consumers.get>> | undefined;
      let recreate = false;
      while (!stopSignal.aborted) {
        try {
          if (recreate) {
            // The durable vanished (deleted, or a memory-storage server restarted): make it again.
            await ensureConsumer(kind, durable, opts.ackWaitMs, opts.maxDeliver);
            recreate = false;
          }
          consumer ??= await js.consumers.get(JOBS_STREAM, durable);
          const m = await consumer.next({ expires: PULL_EXPIRES_MS });
          if (!m) continue;
          if (stopSignal.aborted) {
            m.nak();
            return;
          }
          await handle(m);
        } catch (err) {
          // Server restarting or connection lost: the client reconnects by itself; retry soon.
          consumer = undefined;
          recreate = err instanceof JetStreamApiError;
          await sleep(PULL_RETRY_MS);
        }
      }
    };

    // When a delivery runs out of attempts without a handler deciding (the worker crashed on the
    // last attempt), the server stops delivering and publishes this advisory; record the dead
    // letter and remove the message so it does not linger in the queue.
    const advisory = nc.subscribe(
      `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${JOBS_STREAM}.${durable}`,
      {
        callback: (err, msg) => {
          if (err) return;
          void (async () => {
            const a = msg.json<{ stream_seq: number; deliveries: number }>();
            const sm = await jsm.streams
              .getMessage(JOBS_STREAM, { seq: a.stream_seq })
              .catch(() => null);
            if (!sm) return;
            let payload: unknown;
            try {
              payload = decodePayload(sm.data);
            } catch {
              payload = new TextDecoder().decode(sm.data);
            }
            await writeDeadLetter(kind, a.stream_seq, {
              id: sm.header?.get("Nats-Msg-Id") ?? `seq-${a.stream_seq}`,
              kind,
              payload,
              attempts: a.deliveries,
              error: `no ack after ${a.deliveries} deliveries (ack wait expired on the last attempt)`,
              at: new Date().toISOString(),
            });
            await jsm.streams.deleteMessage(JOBS_STREAM, a.stream_seq, false).catch(() => false);
          })().catch(() => undefined);
        },
      },
    );

    const run = async (): Promise<void> => {
      try {
        // Retry while the server is unreachable; a JetStream API error (bad config) is fatal.
        for (;;) {
          try {
            await ensureConsumer(kind, durable, opts.ackWaitMs, opts.maxDeliver);
            break;
          } catch (err) {
            if (err instanceof JetStreamApiError || stopSignal.aborted) throw err;
            await sleep(PULL_RETRY_MS);
          }
        }
        await Promise.all(Array.from({ length: opts.concurrency }, worker));
      } finally {
        advisory.unsubscribe();
        consumers.delete(consumer);
      }
    };
    let done: Promise<void> = Promise.resolve();
    const consumer: JobConsumer = {
      async stop() {
        stopper.abort();
        await done;
      },
      get done() {
        return done;
      },
    };
    consumers.add(consumer);
    done = run();
    return consumer;
  }

  function track<T>(ch: Channel<T>): Channel<T> {
    channels.add(ch as Channel<unknown>);
    return ch;
  }

  return {
    async publishJob(kind, payload, opts) {
      checkOpen();
      validateKind(kind);
      const id = validateJobId(opts?.id);
      const data = encodePayload(`job ${kind}/${id} payload`, payload, payloadLimit());
      try {
        const ack = await js.publish(`abl.job.${kind}`, data, { msgID: id });
        return { duplicate: ack.duplicate };
      } catch (err) {
        throw new BusError(`publishing job ${kind}/${id}`, { cause: err });
      }
    },

    consumeJobs,

    async deadLetters(kind) {
      validateKind(kind);
      const keys: string[] = [];
      for await (const k of await deadKv.keys(`${kind}.*`)) keys.push(k);
      const out: DeadLetter[] = [];
      for (const k of keys) {
        const e = await deadKv.get(k);
        if (e && e.operation === "PUT") out.push(e.json<DeadLetter>());
      }
      return out.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    },

    async publishEvent(subject, event) {
      checkOpen();
      validateEventSubject(subject);
      const data = encodePayload(`event ${subject}`, event, payloadLimit());
      try {
        await js.publish(`abl.event.${subject}`, data);
      } catch (err) {
        throw new BusError(`publishing event ${subject}`, { cause: err });
      }
    },

    subscribeEvents(filter, opts: SubscribeOptions = {}) {
      checkOpen();
      validateEventFilter(filter);
      const startTime = new Date().toISOString();
      let stop: (() => void) | undefined;
      const ch = track(
        new Channel<BusEvent>(opts.signal, () => {
          stop?.();
          channels.delete(ch as Channel<unknown>);
        }),
      );
      let nextSeq: number | undefined;
      void pump(
        ch,
        reconnects,
        async () => {
          const c = await js.consumers.get(EVENTS_STREAM, {
            filter_subjects: `abl.event.${filter}`,
            ...(nextSeq !== undefined
              ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: nextSeq }
              : opts.fromStart
                ? { deliver_policy: DeliverPolicy.All }
                : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: startTime }),
          });
          const msgs = await c.consume();
          return { messages: msgs, stop: () => void msgs.stop() };
        },
        (m: JsMsg) => {
          nextSeq = m.seq + 1;
          ch.push({
            subject: m.subject.slice("abl.event.".length),
            data: decodePayload(m.data),
            seq: m.seq,
            time: new Date(Math.floor(m.info.timestampNanos / 1e6)),
          });
        },
        (f) => {
          stop = f;
        },
      ).catch((err) => ch.fail(new BusError(`subscribing to events ${filter}`, { cause: err })));
      return ch;
    },

    async kv(bucket, opts: KvOptions = {}) {
      checkOpen();
      validateBucket(bucket);
      let kv: KV;
      if (opts.create === false) {
        try {
          await jsm.streams.info(`KV_${bucket}`);
        } catch (err) {
          throw new KvBucketNotFoundError(bucket, { cause: err });
        }
        kv = await kvm.open(bucket);
      } else {
        kv = await kvm.create(bucket, { history: opts.history ?? 1 });
      }
      return natsKv(bucket, kv, payloadLimit, track, reconnects);
    },

    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([...consumers].map((c) => c.stop()));
      for (const ch of channels) ch.close();
      await nc.drain().catch(() => nc.close());
    },
  };
}

function natsKv(
  bucket: string,
  kv: KV,
  limit: () => number,
  track: <T>(ch: Channel<T>) => Channel<T>,
  reconnects: Set<() => void>,
): Kv {
  const encode = (key: string, value: unknown) =>
    encodePayload(`kv value of ${bucket}/${key}`, value, limit());
  return {
    bucket,
    async get(key): Promise<KvEntry | undefined> {
      validateKvKey(key);
      const e = await kv.get(key);
      if (e?.operation !== "PUT") return undefined;
      return { key, value: decodePayload(e.value), revision: e.revision };
    },
    async put(key, value) {
      validateKvKey(key);
      return kv.put(key, encode(key, value));
    },
    async create(key, value) {
      validateKvKey(key);
      try {
        return await kv.create(key, encode(key, value));
      } catch (err) {
        if (isApiError(err, WRONG_LAST_SEQUENCE))
          throw new KvKeyExistsError(bucket, key, { cause: err });
        throw err;
      }
    },
    async update(key, value, revision) {
      validateKvKey(key);
      if (!Number.isSafeInteger(revision) || revision <= 0) {
        throw new KvRevisionConflictError(bucket, key, revision);
      }
      try {
        return await kv.update(key, encode(key, value), revision);
      } catch (err) {
        if (isApiError(err, WRONG_LAST_SEQUENCE))
          throw new KvRevisionConflictError(bucket, key, revision, { cause: err });
        throw err;
      }
    },
    async delete(key) {
      validateKvKey(key);
      await kv.delete(key);
    },
    async keys(filter = ">") {
      validateKvFilter(filter);
      const out: string[] = [];
      for await (const k of await kv.keys(filter)) out.push(k);
      return out.sort();
    },
    watch(opts: { filter?: string; signal?: AbortSignal } = {}) {
      const filter = validateKvFilter(opts.filter ?? ">");
      let stop: (() => void) | undefined;
      const ch = track(new Channel<KvChange>(opts.signal, () => stop?.()));
      let resumeFrom: number | undefined;
      void pump(
        ch,
        reconnects,
        async () => {
          const it = await kv.watch({
            key: filter,
            ...(resumeFrom !== undefined ? { resumeFromRevision: resumeFrom } : {}),
          });
          return { messages: it, stop: () => it.stop() };
        },
        (e: KvWatchEntry) => {
          resumeFrom = e.revision + 1;
          ch.push(
            e.operation === "PUT"
              ? {
                  key: e.key,
                  value: decodePayload(e.value),
                  revision: e.revision,
                  operation: "put",
                }
              : { key: e.key, value: undefined, revision: e.revision, operation: "delete" },
          );
        },
        (f) => {
          stop = f;
        },
      ).catch((err) => ch.fail(new BusError(`watching kv ${bucket} ${filter}`, { cause: err })));
      return ch;
    },
  };
}
