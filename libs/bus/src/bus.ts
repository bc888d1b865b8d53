/** One delivery of a queued job to a handler. */
export interface Job {
  /** The id the job was published with (usually its step key). */
  readonly id: string;
  readonly kind: string;
  readonly payload: unknown;
  /** 1 on first delivery, 2 on the first redelivery, ... */
  readonly attempt: number;
  /** Heartbeat for long jobs: resets the ack-wait timer so the job is not redelivered. */
  working(): void;
  /**
   * Aborted when this delivery is no longer ours: the consumer is stopping, or the ack wait
   * passed without `working()` (the job will be redelivered elsewhere).
   */
  readonly signal: AbortSignal;
}

/** Resolve to ack the job; throw to retry it later (or `TerminalJobError` to give up now). */
export type JobHandler = (job: Job) => Promise<void>;

/** Options of {@link Bus.consumeJobs}. Queue settings are shared by all consumers of a kind. */
export interface ConsumeOptions {
  /** Stops the consumer, like `stop()`. */
  signal?: AbortSignal;
  /** Jobs handled at once by this consumer (default 1). */
  concurrency?: number;
  /** A delivery without ack or `working()` for this long is redelivered (default 30 000). */
  ackWaitMs?: number;
  /** Deliveries before a job is dead-lettered (default 5). */
  maxDeliver?: number;
  /** Delay before retry after attempt n fails: `backoffMs[n-1]`, last value repeated. */
  backoffMs?: number[];
}

/** A running job consumer. */
export interface JobConsumer {
  /** Stops pulling, aborts in-flight jobs' signals and waits for their handlers to settle. */
  stop(): Promise<void>;
  /** Settles when the consumer has stopped (rejects if it failed for good). */
  readonly done: Promise<void>;
}

/** What is left of a job that failed `maxDeliver` times or threw `TerminalJobError`. */
export interface DeadLetter {
  id: string;
  kind: string;
  payload: unknown;
  /** Deliveries made. */
  attempts: number;
  /** Last error message, or why delivery stopped (ack wait expired on the last attempt). */
  error: string;
  /** ISO time. */
  at: string;
}

/** One event read from the event log. */
export interface BusEvent {
  /** Subject relative to `abl.event.`, e.g. `sweep-1.trial`. */
  subject: string;
  data: unknown;
  /** Position in the event log (increasing). */
  seq: number;
  time: Date;
}

/** Options of {@link Bus.subscribeEvents}. */
export interface SubscribeOptions {
  /** Replay every stored event matching the filter before live ones (default: live only). */
  fromStart?: boolean;
  /** Ends the iteration (without error). */
  signal?: AbortSignal;
}

/** A KV value with its revision. */
export interface KvEntry {
  key: string;
  value: unknown;
  revision: number;
}

/** One change seen by {@link Kv.watch}. */
export interface KvChange {
  key: string;
  /** `undefined` for deletes. */
  value: unknown;
  revision: number;
  operation: "put" | "delete";
}

/**
 * A key → JSON value map with revisions. Keys are `[A-Za-z0-9_=/-]` tokens joined by `.`;
 * filters may use NATS wildcards (`*` one token, `>` the rest).
 */
export interface Kv {
  readonly bucket: string;
  get(key: string): Promise<KvEntry | undefined>;
  /** Writes unconditionally; returns the new revision. */
  put(key: string, value: unknown): Promise<number>;
  /** Writes only if the key has no value; else throws `KvKeyExistsError`. */
  create(key: string, value: unknown): Promise<number>;
  /** Writes only if `revision` is the key's latest; else throws `KvRevisionConflictError`. */
  update(key: string, value: unknown, revision: number): Promise<number>;
  delete(key: string): Promise<void>;
  /** Keys with a value, matching `filter` (default `>`), sorted. */
  keys(filter?: string): Promise<string[]>;
  /**
   * Current values matching `filter` (default `>`), then later changes in order, until `signal`.
   * When the bucket keeps one revision per key (NATS `history: 1`), a value replaced before the
   * watcher received it can be skipped; the latest value of a key always arrives.
   */
  watch(opts?: { filter?: string; signal?: AbortSignal }): AsyncIterable<KvChange>;
}

/** Options of {@link Bus.kv}. */
export interface KvOptions {
  /** Create the bucket if it is missing (default true); else throw `KvBucketNotFoundError`. */
  create?: boolean;
  /** Revisions kept per key (default 1). */
  history?: number;
}

/**
 * Messaging for the pipeline: durable job queues (one per job kind, de-duplicated by job id,
 * at-least-once with redelivery, dead letters), an event log, and KV buckets. Implemented in
 * memory (`createMemoryBus`) and on NATS JetStream (`createNatsBus`). Payloads are JSON.
 */
export interface Bus {
  /**
   * Enqueues a job. Publishing the same `id` again while it is remembered (the de-duplication
   * window) is a no-op that returns `{ duplicate: true }`.
   */
  publishJob(kind: string, payload: unknown, opts: { id: string }): Promise<{ duplicate: boolean }>;
  /** Starts handling jobs of `kind`; workers of one kind share the queue (each job to one). */
  consumeJobs(kind: string, handler: JobHandler, opts?: ConsumeOptions): JobConsumer;
  /** Dead-letter records of `kind`, oldest first. */
  deadLetters(kind: string): Promise<DeadLetter[]>;
  /** Appends an event; `subject` is relative to `abl.event.` (e.g. `<sweep>.<kind>`). */
  publishEvent(subject: string, event: unknown): Promise<void>;
  /** Events whose subject matches `filter` (wildcards `*`, `>`), until `opts.signal` aborts. */
  subscribeEvents(filter: string, opts?: SubscribeOptions): AsyncIterable<BusEvent>;
  /** Opens (by default creating) a KV bucket; names are `[A-Za-z0-9_-]+`. */
  kv(bucket: string, opts?: KvOptions): Promise<Kv>;
  /** Stops every consumer and closes the connection. */
  close(): Promise<void>;
}
