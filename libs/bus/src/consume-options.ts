import type { ConsumeOptions } from "./bus.ts";
import { BusError } from "./errors.ts";

/** Default ack wait: long enough for a slow handler to call `working()` every few seconds. */
export const DEFAULT_ACK_WAIT_MS = 30_000;
/** Default deliveries before dead-lettering: a few retries cover transient infrastructure faults. */
export const DEFAULT_MAX_DELIVER = 5;
/** Default retry delays after failed attempts 1, 2, 3+ (grows so a flapping dependency can heal). */
export const DEFAULT_BACKOFF_MS: readonly number[] = [1_000, 10_000, 60_000];
/**
 * How long a job id is remembered for de-duplication (JetStream `duplicate_window`). Beyond it,
 * the step-key cache in the object store is what prevents reruns.
 */
export const DEDUP_WINDOW_MS = 60 * 60 * 1000;
/** Smallest ack wait we accept; below it heartbeats cannot keep up. */
export const MIN_ACK_WAIT_MS = 100;

/** Consume options with defaults merged in and every value checked. */
export interface ResolvedConsumeOptions {
  concurrency: number;
  ackWaitMs: number;
  maxDeliver: number;
  backoffMs: number[];
}

/** Merges defaults into `opts` and validates them, naming the bad key. */
export function resolveConsumeOptions(opts: ConsumeOptions = {}): ResolvedConsumeOptions {
  const r: ResolvedConsumeOptions = {
    concurrency: opts.concurrency ?? 1,
    ackWaitMs: opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS,
    maxDeliver: opts.maxDeliver ?? DEFAULT_MAX_DELIVER,
    backoffMs: [...(opts.backoffMs ?? DEFAULT_BACKOFF_MS)],
  };
  if (!Number.isInteger(r.concurrency) || r.concurrency < 1) {
    throw new BusError(`consume option concurrency must be an integer >= 1, got ${r.concurrency}`);
  }
  if (!Number.isInteger(r.ackWaitMs) || r.ackWaitMs < MIN_ACK_WAIT_MS) {
    throw new BusError(
      `consume option ackWaitMs must be an integer >= ${MIN_ACK_WAIT_MS}, got ${r.ackWaitMs}`,
    );
  }
  if (!Number.isInteger(r.maxDeliver) || r.maxDeliver < 1) {
    throw new BusError(`consume option maxDeliver must be an integer >= 1, got ${r.maxDeliver}`);
  }
  if (r.backoffMs.length === 0 || r.backoffMs.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new BusError(
      `consume option backoffMs must be a non-empty list of integers >= 0, got ${JSON.stringify(r.backoffMs)}`,
    );
  }
  return r;
}

/** Retry delay after failed attempt `attempt` (1-based). */
export function backoffFor(opts: ResolvedConsumeOptions, attempt: number): number {
  return opts.backoffMs[Math.min(attempt - 1, opts.backoffMs.length - 1)]!;
}

/** A short message for a handler error. */
export function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
