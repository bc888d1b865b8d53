/**
 * Agents run outside the environment and act on it (Harbor's BaseAgent). Besides Terminus-2
 * (terminus.ts) there are the two calibration agents: `oracle` runs the task's
 * `solution/solve.sh`, `nop` does nothing (reference/terminal-bench.md §9 item 3).
 */
import { join } from "node:path";
import type { Environment } from "./environment.ts";
import type { AgentInfo, ModelInfo } from "./records.ts";
import type { Task } from "./task.ts";

/** Counters an agent updates while it runs; the trial reads them even after a timeout. */
export interface AgentStats {
  turns: number;
  parseErrors: number;
  noCmdTurns: number;
  warnings: number;
  tokensIn: number;
  tokensOut: number;
  llmSec: number;
  summarizations: number;
  /** Why the loop ended: completed, max_turns, session_gone, or the agent's own word. */
  stopReason: string;
}

/** One step of the trajectory, stored as `agent/turn-NNNN.json` and a line of `trace.jsonl`. */
export interface TurnRecord {
  readonly turn: number;
  readonly kind: "turn" | "summarization" | "oracle";
  readonly startedAt: string;
  /** The user message sent. */
  readonly prompt: string;
  readonly response: string;
  readonly reasoning: string | null;
  readonly finishReason: string | null;
  readonly parse: {
    readonly ok: boolean;
    readonly error?: string;
    readonly warnings: readonly string[];
  };
  readonly commands: readonly { readonly keystrokes: string; readonly duration: number }[];
  readonly taskComplete: boolean;
  readonly llmSec: number;
  readonly tokensIn: number;
  readonly tokensOut: number;
}

/** What an agent run gets. */
export interface AgentContext {
  readonly task: Task;
  readonly env: Environment;
  /** Aborted when the agent's time is up or the trial is cancelled. */
  readonly signal: AbortSignal;
  readonly stats: AgentStats;
  /** Called after each turn (the trial stores it). */
  readonly onTurn: (turn: TurnRecord) => Promise<void>;
}

/** An agent. `run` resolves when it stops on its own; it throws LlmError/EnvironmentError. */
export interface Agent {
  readonly info: AgentInfo;
  readonly model: ModelInfo;
  run(ctx: AgentContext): Promise<void>;
}

/** Fresh zeroed stats. */
export function newAgentStats(): AgentStats {
  return {
    turns: 0,
    parseErrors: 0,
    noCmdTurns: 0,
    warnings: 0,
    tokensIn: 0,
    tokensOut: 0,
    llmSec: 0,
    summarizations: 0,
    stopReason: "",
  };
}

const NO_MODEL: ModelInfo = { endpoint: "", name: "", sampling: {} };

/** The agent that does nothing; every task must fail under it. */
export function createNopAgent(): Agent {
  return {
    info: { name: "nop", version: "1.0.0", flags: {} },
    model: NO_MODEL,
    async run(ctx) {
      ctx.stats.stopReason = "completed";
    },
  };
}

/** Runs `solution/solve.sh` from `/solution` (uploaded only for this agent). */
export function createOracleAgent(): Agent {
  return {
    info: { name: "oracle", version: "1.0.0", flags: {} },
    model: NO_MODEL,
    async run(ctx) {
      const startedAt = new Date().toISOString();
      await ctx.env.upload(join(ctx.task.dir, "solution"), "/solution", ctx.signal);
      const r = await ctx.env.exec("bash /solution/solve.sh > /logs/agent/oracle.txt 2>&1", {
        env: ctx.task.config.solutionEnv,
        signal: ctx.signal,
      });
      const log = await ctx.env.exec("tail -c 8192 /logs/agent/oracle.txt", { signal: ctx.signal });
      ctx.stats.turns = 1;
      ctx.stats.stopReason = r.exitCode === 0 ? "completed" : `solve.sh exited ${r.exitCode}`;
      await ctx.onTurn({
        turn: 1,
        kind: "oracle",
        startedAt,
        prompt: "bash /solution/solve.sh",
        response: log.stdout,
        reasoning: null,
        finishReason: null,
        parse: { ok: r.exitCode === 0, warnings: [] },
        commands: [],
        taskComplete: true,
        llmSec: 0,
        tokensIn: 0,
        tokensOut: 0,
      });
    },
  };
}
