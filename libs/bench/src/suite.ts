/**
 * The suite runner: variants × tasks × replicas, in process (the cluster runner reuses it with
 * a Kubernetes environment factory). Trials are ordered replica-major and, within a replica, task
 * by task with every variant back to back, so the arms of one task run close together in time
 * and share the same load (reference/terminal-bench.md §9 item 14). Trial ids are deterministic;
 * a trial whose `result.json` exists is skipped (resume). Concurrency is limited overall and per
 * LLM endpoint. Progress comes out as an async generator of events; the return value summarizes.
 */
import { createHash } from "node:crypto";
import type { ObjectStore } from "@abl/store";
import type { Agent } from "./agent.ts";
import type { EnvironmentFactory } from "./environment.ts";
import { isScoredOutcome, type TrialOutcome, type TrialResult } from "./records.ts";
import { KeyedSemaphore, Semaphore } from "./semaphore.ts";
import type { Task } from "./task.ts";
import { readTrialResult, runTrial, type TrialEvent } from "./trial.ts";

/** One arm of the comparison. */
export interface SuiteVariant {
  /** Name used in records and ids (letters, digits, `-`, `_`, `.`). */
  readonly name: string;
  readonly agent: Agent;
}

/** Options of {@link runSuite}. */
export interface SuiteOptions {
  /** Identifies the run; part of every trial id. */
  readonly runId: string;
  readonly tasks: readonly Task[];
  readonly variants: readonly SuiteVariant[];
  readonly replicas: number;
  readonly store: ObjectStore;
  /** Key prefix of trial records (default `runs/<runId>/trials`). */
  readonly prefix?: string;
  readonly envFactory: EnvironmentFactory;
  /** Trials at once, overall (default 4). */
  readonly concurrency?: number;
  /** Trials at once per LLM endpoint (default: the overall limit). */
  readonly perEndpointConcurrency?: number;
  readonly maxAttempts?: number;
  readonly retryBackoffMs?: number;
  readonly agentTimeoutMultiplier?: number;
  readonly verifierTimeoutMultiplier?: number;
  readonly configExtra?: Readonly<Record<string, unknown>>;
  readonly signal?: AbortSignal;
}

/** Progress of a suite. */
export type SuiteEvent =
  | { readonly type: "planned"; readonly total: number; readonly alreadyDone: number }
  | { readonly type: "trial_skipped"; readonly result: TrialResult }
  | {
      readonly type: "trial_started";
      readonly trialId: string;
      readonly variant: string;
      readonly taskId: string;
      readonly replica: number;
    }
  | { readonly type: "trial_event"; readonly event: TrialEvent }
  | {
      readonly type: "trial_finished";
      readonly result: TrialResult;
      readonly done: number;
      readonly total: number;
    };

/** Per-variant counts. */
export interface VariantSummary {
  readonly trials: number;
  /** Trials that count in the score (not infra errors). */
  readonly scored: number;
  readonly passed: number;
  /** Mean reward over scored trials (0 when none). */
  readonly meanReward: number;
  readonly outcomes: Readonly<Partial<Record<TrialOutcome, number>>>;
}

/** What a finished suite returns. */
export interface SuiteSummary {
  readonly total: number;
  readonly skipped: number;
  readonly results: readonly TrialResult[];
  readonly byVariant: Readonly<Record<string, VariantSummary>>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The deterministic trial id of (run, variant, task, replica). */
export function trialIdFor(runId: string, variant: string, task: Task, replica: number): string {
  const h = createHash("sha256")
    .update(`${runId}\0${variant}\0${task.id}\0${task.digest}\0${replica}`)
    .digest("hex")
    .slice(0, 10);
  return `${task.id}.${variant}.r${replica}.${h}`;
}

/** The order trials run in: replica, then task, then variant. */
export function planTrials(
  options: Pick<SuiteOptions, "runId" | "tasks" | "variants" | "replicas">,
): { trialId: string; variant: SuiteVariant; task: Task; replica: number }[] {
  const plan = [];
  for (let r = 0; r < options.replicas; r++) {
    for (const task of options.tasks) {
      for (const variant of options.variants) {
        plan.push({
          trialId: trialIdFor(options.runId, variant.name, task, r),
          variant,
          task,
          replica: r,
        });
      }
    }
  }
  return plan;
}

/** Summarizes results per variant. */
export function summarize(results: readonly TrialResult[]): Record<string, VariantSummary> {
  const out: Record<string, VariantSummary> = {};
  const groups = new Map<string, TrialResult[]>();
  for (const r of results) groups.set(r.variant, [...(groups.get(r.variant) ?? []), r]);
  for (const [v, rs] of groups) {
    const scored = rs.filter((r) => isScoredOutcome(r.outcome));
    const outcomes: Partial<Record<TrialOutcome, number>> = {};
    for (const r of rs) outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
    out[v] = {
      trials: rs.length,
      scored: scored.length,
      passed: rs.filter((r) => r.outcome === "passed").length,
      meanReward: scored.length
        ? scored.reduce((s, r) => s + (r.reward ?? 0), 0) / scored.length
        : 0,
      outcomes,
    };
  }
  return out;
}

/** Runs a suite, yielding progress events; returns the summary. */
export async function* runSuite(options: SuiteOptions): AsyncGenerator<SuiteEvent, SuiteSummary> {
  if (!NAME.test(options.runId))
    throw new RangeError(`runId "${options.runId}" must match ${NAME}`);
  if (!Number.isInteger(options.replicas) || options.replicas < 1) {
    throw new RangeError(`replicas must be a positive integer, got ${options.replicas}`);
  }
  if (options.variants.length === 0) throw new RangeError("at least one variant is needed");
  const names = new Set<string>();
  for (const v of options.variants) {
    if (!NAME.test(v.name)) throw new RangeError(`variant name "${v.name}" must match ${NAME}`);
    if (names.has(v.name)) throw new RangeError(`variant "${v.name}" appears twice`);
    names.add(v.name);
  }
  const prefix = options.prefix ?? `runs/${options.runId}/trials`;
  const overall = new Semaphore(options.concurrency ?? 4);
  const perEndpoint = new KeyedSemaphore(
    options.perEndpointConcurrency ?? options.concurrency ?? 4,
  );
  const plan = planTrials(options);
  const results: TrialResult[] = [];
  const pending: typeof plan = [];
  const skippedResults: TrialResult[] = [];
  for (const p of plan) {
    const done = await readTrialResult(options.store, prefix, p.trialId);
    if (done) skippedResults.push(done);
    else pending.push(p);
  }
  yield { type: "planned", total: plan.length, alreadyDone: skippedResults.length };
  for (const r of skippedResults) {
    results.push(r);
    yield { type: "trial_skipped", result: r };
  }

  const queue: SuiteEvent[] = [];
  let wake: (() => void) | null = null;
  const emit = (e: SuiteEvent) => {
    queue.push(e);
    wake?.();
    wake = null;
  };
  let failure: unknown = null;
  let running = 0;
  let finished = 0;
  const dispatcher = (async () => {
    for (const p of pending) {
      const releaseAll = await overall.acquire(options.signal);
      // A trial that threw (cancellation, a bug) stops the dispatch; running trials finish.
      if (failure) {
        releaseAll();
        break;
      }
      const endpoint = p.variant.agent.model.endpoint || "(none)";
      let releaseEp: () => void;
      try {
        releaseEp = await perEndpoint.get(endpoint).acquire(options.signal);
      } catch (err) {
        releaseAll();
        throw err;
      }
      running++;
      emit({
        type: "trial_started",
        trialId: p.trialId,
        variant: p.variant.name,
        taskId: p.task.id,
        replica: p.replica,
      });
      runTrial(
        {
          trialId: p.trialId,
          variant: p.variant.name,
          replica: p.replica,
          task: p.task,
          agent: p.variant.agent,
        },
        {
          envFactory: options.envFactory,
          store: options.store,
          prefix,
          onEvent: (event) => emit({ type: "trial_event", event }),
          configExtra: { runId: options.runId, ...options.configExtra },
          ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }),
          ...(options.retryBackoffMs === undefined
            ? {}
            : { retryBackoffMs: options.retryBackoffMs }),
          ...(options.agentTimeoutMultiplier === undefined
            ? {}
            : { agentTimeoutMultiplier: options.agentTimeoutMultiplier }),
          ...(options.verifierTimeoutMultiplier === undefined
            ? {}
            : { verifierTimeoutMultiplier: options.verifierTimeoutMultiplier }),
          ...(options.signal ? { signal: options.signal } : {}),
        },
      )
        .then((result) => {
          results.push(result);
          finished++;
          emit({
            type: "trial_finished",
            result,
            done: finished + skippedResults.length,
            total: plan.length,
          });
        })
        .catch((err: unknown) => {
          failure ??= err;
        })
        .finally(() => {
          running--;
          releaseEp();
          releaseAll();
          wake?.();
          wake = null;
        });
    }
  })().catch((err: unknown) => {
    failure ??= err;
  });
  let dispatched = false;
  void dispatcher.then(() => {
    dispatched = true;
    wake?.();
    wake = null;
  });
  for (;;) {
    while (queue.length > 0) yield queue.shift()!;
    if (failure && running === 0) throw failure;
    if (dispatched && running === 0 && queue.length === 0) break;
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  }
  if (failure) throw failure;
  return {
    total: plan.length,
    skipped: skippedResults.length,
    results,
    byVariant: summarize(results),
  };
}
