/**
 * The trial record: what one (variant, task, replica) run produced. `result.json` in the object
 * store holds exactly a {@link TrialResult}; the statistics (libs/stats) and the pipeline read it.
 *
 * Outcome classes follow Harbor's error taxonomy (reference/terminal-bench.md §9 item 12):
 * `passed`/`failed`/`agent_timeout`/`verifier_timeout`/`reward_missing` are scored (a missing
 * reward counts as 0, as on the leaderboard); `environment_error` and `llm_error` are infra
 * failures, retried and never scored 0 (their reward is null).
 */

/** Every way a trial can end. */
export const TRIAL_OUTCOMES = [
  "passed",
  "failed",
  "agent_timeout",
  "verifier_timeout",
  "reward_missing",
  "environment_error",
  "llm_error",
] as const;

/** How a trial ended; see {@link TRIAL_OUTCOMES}. */
export type TrialOutcome = (typeof TRIAL_OUTCOMES)[number];

/** Outcomes that are infrastructure failures: excluded from scoring, not counted as 0. */
export const INFRA_OUTCOMES: readonly TrialOutcome[] = ["environment_error", "llm_error"];

/** True when an outcome counts in the score (reward or 0). */
export function isScoredOutcome(outcome: TrialOutcome): boolean {
  return !INFRA_OUTCOMES.includes(outcome);
}

/** Wall-clock seconds spent per phase of one trial. */
export interface TrialTimings {
  /** Agent phase (setup excluded), including LLM time. */
  readonly agentSec: number;
  /** Verifier phase (upload of tests, test.sh, reading rewards). */
  readonly verifierSec: number;
  /** Whole trial from environment start to stop. */
  readonly totalSec: number;
  /** Sum of LLM request latencies (part of agentSec). */
  readonly llmSec: number;
}

/** The agent that ran, with every deviation from upstream Terminus-2 as a flag. */
export interface AgentInfo {
  /** `terminus-json`, `terminus-xml`, `oracle` or `nop`. */
  readonly name: string;
  /** Harness version, e.g. `terminus-2@2.0.0-ts`. */
  readonly version: string;
  /** Extensions and caps (acceptSplitJson, maxTurns, maxTokens, ...); empty means upstream. */
  readonly flags: Readonly<Record<string, string | number | boolean | null>>;
}

/** The model endpoint and the sampling parameters sent with each request. */
export interface ModelInfo {
  /** Base URL of the OpenAI-compatible endpoint ("" for agents without a model). */
  readonly endpoint: string;
  /** Model name sent in requests. */
  readonly name: string;
  /** Sampling parameters as sent (temperature, top_p, max_tokens, ...). */
  readonly sampling: Readonly<Record<string, number | string | boolean | null>>;
}

/** One trial's result (`result.json`). */
export interface TrialResult {
  /** Deterministic id from (run, variant, task digest, replica). */
  readonly trialId: string;
  /** The model variant (arm) this trial belongs to. */
  readonly variant: string;
  /** Task name within its dataset. */
  readonly taskId: string;
  /** sha256 content digest of the task folder. */
  readonly taskDigest: string;
  /** Replica index, 0-based. */
  readonly replica: number;
  /** Reward in [0, 1]; null for infra outcomes (never scored). */
  readonly reward: number | null;
  readonly outcome: TrialOutcome;
  /** Agent turns (LLM responses acted on or rejected). */
  readonly turns: number;
  /** Turns whose response could not be parsed (fed back as an error turn). */
  readonly parseErrors: number;
  /** Turns whose response had no `commands` key at all (missing, not empty). */
  readonly noCmdTurns: number;
  /** Parser warnings summed over turns. */
  readonly warnings: number;
  readonly tokensIn: number;
  readonly tokensOut: number;
  readonly timings: TrialTimings;
  readonly agent: AgentInfo;
  readonly model: ModelInfo;
  /** ISO-8601 time. */
  readonly startedAt: string;
  /** ISO-8601 time. */
  readonly finishedAt: string;
  /** Attempts made (1 + infra retries). */
  readonly attempts: number;
  /** Human-readable reason for non-passing outcomes (error message, which timer fired). */
  readonly detail?: string;
}
