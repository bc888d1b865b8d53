/**
 * One trial: start the environment, run the agent under the task's agent timeout, run the
 * verifier (also after an agent timeout, with the agent's processes still running), stop the
 * environment on every path, and write the record to the object store: `config.json` first, then
 * the trajectory (`agent/turn-NNNN-<kind>.json`, `agent/trace.jsonl`, `agent/logs/*` from
 * /logs/agent), `verifier/*`, and `result.json`
 * last, so a trial with a result is complete (resume skips it). Environment and LLM errors are
 * retried up to `maxAttempts` and, if they persist, recorded with a null reward — never as 0.
 */

import { setTimeout as sleep } from "node:timers/promises";
import type { ObjectStore } from "@abl/store";
import { type Agent, newAgentStats, type TurnRecord } from "./agent.ts";
import { collectFiles } from "./collect.ts";
import type { Environment, EnvironmentFactory } from "./environment.ts";
import { EnvironmentError, LlmError } from "./errors.ts";
import type { TrialOutcome, TrialResult } from "./records.ts";
import type { Task } from "./task.ts";
import { runVerifier, type VerifierResult } from "./verifier.ts";

/** Default attempts per trial (1 + 2 infra retries). */
export const DEFAULT_MAX_ATTEMPTS = 3;

/** What to run. */
export interface TrialSpec {
  readonly trialId: string;
  readonly variant: string;
  readonly replica: number;
  readonly task: Task;
  readonly agent: Agent;
}

/** Progress inside one trial. */
export type TrialEvent =
  | {
      readonly type: "attempt_failed";
      readonly trialId: string;
      readonly attempt: number;
      readonly outcome: TrialOutcome;
      readonly detail: string;
    }
  | { readonly type: "turn"; readonly trialId: string; readonly turn: number };

/** Options of {@link runTrial}. */
export interface RunTrialOptions {
  readonly envFactory: EnvironmentFactory;
  readonly store: ObjectStore;
  /** Key prefix of trial records, e.g. `sweeps/<id>/trials`. */
  readonly prefix: string;
  readonly maxAttempts?: number;
  /** Waits before attempt k+1: `retryBackoffMs × 2^(k-1)` (default 1000). */
  readonly retryBackoffMs?: number;
  /** Multiplies the task's agent timeout (default 1: leaderboard rules forbid changing it). */
  readonly agentTimeoutMultiplier?: number;
  readonly verifierTimeoutMultiplier?: number;
  /** Extra fields for config.json (run id, dataset ref, ...). */
  readonly configExtra?: Readonly<Record<string, unknown>>;
  readonly onEvent?: (e: TrialEvent) => void;
  readonly signal?: AbortSignal;
}

const enc = new TextEncoder();
const json = (v: unknown) => enc.encode(`${JSON.stringify(v, null, 2)}\n`);

/** Store key of a trial's `result.json`. */
export function resultKey(prefix: string, trialId: string): string {
  return `${prefix}/${trialId}/result.json`;
}

/** Reads a finished trial's result, or undefined when it has none yet. */
export async function readTrialResult(
  store: ObjectStore,
  prefix: string,
  trialId: string,
): Promise<TrialResult | undefined> {
  const key = resultKey(prefix, trialId);
  if (!(await store.stat(key))) return undefined;
  return JSON.parse(new TextDecoder().decode(await store.getBytes(key))) as TrialResult;
}

interface AttemptOutcome {
  /** Files of /logs/agent (pane log, oracle output), best effort. */
  agentLogs: Record<string, Uint8Array>;
  outcome: TrialOutcome;
  reward: number | null;
  detail: string;
  verifier: VerifierResult | null;
  agentSec: number;
  verifierSec: number;
  turns: TurnRecord[];
}

function classify(err: unknown): { outcome: TrialOutcome; detail: string } {
  if (err instanceof LlmError)
    return { outcome: "llm_error", detail: `${err.name}: ${err.message}` };
  if (err instanceof EnvironmentError) return { outcome: "environment_error", detail: err.message };
  const e = err as Error;
  return {
    outcome: "environment_error",
    detail: `${e?.name ?? "Error"}: ${e?.message ?? String(err)}`,
  };
}

/** Runs (or retries) one trial and writes its record; returns the result. */
export async function runTrial(spec: TrialSpec, options: RunTrialOptions): Promise<TrialResult> {
  const { store, signal } = options;
  const base = `${options.prefix}/${spec.trialId}`;
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const { task, agent } = spec;
  await store.put(
    `${base}/config.json`,
    json({
      trialId: spec.trialId,
      variant: spec.variant,
      replica: spec.replica,
      taskId: task.id,
      taskDigest: task.digest,
      agent: agent.info,
      model: agent.model,
      agentTimeoutSec: task.config.agentTimeoutSec,
      verifierTimeoutSec: task.config.verifierTimeoutSec,
      agentTimeoutMultiplier: options.agentTimeoutMultiplier ?? 1,
      verifierTimeoutMultiplier: options.verifierTimeoutMultiplier ?? 1,
      environment: task.config.environment,
      maxAttempts,
      ...options.configExtra,
    }),
  );
  const stats = newAgentStats();
  let last: AttemptOutcome | null = null;
  let attempt = 0;
  while (attempt < maxAttempts) {
    attempt++;
    if (attempt > 1) {
      await sleep(
        (options.retryBackoffMs ?? 1000) * 2 ** (attempt - 2),
        undefined,
        signal ? { signal } : {},
      );
    }
    Object.assign(stats, newAgentStats());
    last = await runAttempt(spec, options, stats);
    const infra = last.outcome === "environment_error" || last.outcome === "llm_error";
    if (!infra || attempt === maxAttempts) break;
    options.onEvent?.({
      type: "attempt_failed",
      trialId: spec.trialId,
      attempt,
      outcome: last.outcome,
      detail: last.detail,
    });
    await store.put(
      `${base}/attempts/${attempt}/trace.jsonl`,
      enc.encode(
        last.turns.map((t) => JSON.stringify(t)).join("\n") + (last.turns.length ? "\n" : ""),
      ),
    );
    await store.put(
      `${base}/attempts/${attempt}/error.json`,
      json({ outcome: last.outcome, detail: last.detail }),
    );
  }
  const a = last!;
  for (const t of a.turns) {
    await store.put(
      `${base}/agent/turn-${String(t.turn).padStart(4, "0")}-${t.kind}.json`,
      json(t),
    );
  }
  await store.put(
    `${base}/agent/trace.jsonl`,
    enc.encode(a.turns.map((t) => JSON.stringify(t)).join("\n") + (a.turns.length ? "\n" : "")),
  );
  for (const [name, data] of Object.entries(a.agentLogs)) {
    await store.put(`${base}/agent/logs/${name}`, data);
  }
  for (const [name, data] of Object.entries(a.verifier?.files ?? {})) {
    await store.put(`${base}/verifier/${name}`, data);
  }
  const result: TrialResult = {
    trialId: spec.trialId,
    variant: spec.variant,
    taskId: task.id,
    taskDigest: task.digest,
    replica: spec.replica,
    reward: a.reward,
    outcome: a.outcome,
    turns: stats.turns,
    parseErrors: stats.parseErrors,
    noCmdTurns: stats.noCmdTurns,
    warnings: stats.warnings,
    tokensIn: stats.tokensIn,
    tokensOut: stats.tokensOut,
    timings: {
      agentSec: a.agentSec,
      verifierSec: a.verifierSec,
      totalSec: (performance.now() - t0) / 1000,
      llmSec: stats.llmSec,
    },
    agent: agent.info,
    model: agent.model,
    startedAt,
    finishedAt: new Date().toISOString(),
    attempts: attempt,
    detail: a.detail,
  };
  await store.put(resultKey(options.prefix, spec.trialId), json(result));
  return result;
}

async function runAttempt(
  spec: TrialSpec,
  options: RunTrialOptions,
  stats: ReturnType<typeof newAgentStats>,
): Promise<AttemptOutcome> {
  const { task, agent } = spec;
  const parent = options.signal ?? new AbortController().signal;
  const turns: TurnRecord[] = [];
  let env: Environment | undefined;
  let agentSec = 0;
  let verifierSec = 0;
  let agentLogs: Record<string, Uint8Array> = {};
  try {
    env = options.envFactory(task, spec.trialId);
    const buildTimeout = AbortSignal.timeout(task.config.environment.buildTimeoutSec * 1000);
    try {
      await env.start(AbortSignal.any([parent, buildTimeout]));
    } catch (err) {
      parent.throwIfAborted();
      if (buildTimeout.aborted) {
        throw new EnvironmentError(
          `environment start exceeded build_timeout_sec = ${task.config.environment.buildTimeoutSec}`,
          { cause: err },
        );
      }
      throw err;
    }
    const agentLimit = task.config.agentTimeoutSec;
    const timer =
      agentLimit === null
        ? null
        : AbortSignal.timeout(agentLimit * (options.agentTimeoutMultiplier ?? 1) * 1000);
    const agentSignal = timer ? AbortSignal.any([parent, timer]) : parent;
    let agentTimedOut = false;
    const a0 = performance.now();
    try {
      await agent.run({
        task,
        env,
        signal: agentSignal,
        stats,
        onTurn: async (t) => {
          turns.push(t);
          options.onEvent?.({ type: "turn", trialId: spec.trialId, turn: t.turn });
        },
      });
    } catch (err) {
      parent.throwIfAborted();
      if (timer?.aborted) {
        agentTimedOut = true;
        stats.stopReason = "agent_timeout";
      } else throw err;
    }
    agentSec = (performance.now() - a0) / 1000;
    // Best effort: a missing pane log must not turn a scored trial into an infra error.
    agentLogs = await collectFiles(env, "/logs/agent", parent).catch(() => ({}));
    const vopts = {
      signal: parent,
      ...(options.verifierTimeoutMultiplier
        ? { timeoutMultiplier: options.verifierTimeoutMultiplier }
        : {}),
    };
    const v = await runVerifier(env, task, vopts);
    verifierSec = v.seconds;
    if (agentTimedOut) {
      return {
        agentLogs,
        outcome: "agent_timeout",
        reward: v.reward,
        detail: `agent exceeded timeout_sec = ${agentLimit} × ${options.agentTimeoutMultiplier ?? 1}; verifier: ${v.detail}`,
        verifier: v,
        agentSec,
        verifierSec,
        turns,
      };
    }
    const why = stats.stopReason ? `agent stopped: ${stats.stopReason}; ` : "";
    return {
      agentLogs,
      outcome: v.outcome,
      reward: v.reward,
      detail: `${why}${v.detail}`,
      verifier: v,
      agentSec,
      verifierSec,
      turns,
    };
  } catch (err) {
    parent.throwIfAborted();
    const c = classify(err);
    return { ...c, agentLogs, reward: null, verifier: null, agentSec, verifierSec, turns };
  } finally {
    await env?.stop().catch(() => undefined);
  }
}
