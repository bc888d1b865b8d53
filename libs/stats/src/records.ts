/**
 * The trial record as statistics need it: a structural subset of the bench's `TrialResult`
 * (libs/bench/src/records.ts), so a bench record can be passed as is while stats stays
 * independent of bench (DESIGN: "bench and stats stand alone").
 */
import { StatsInputError } from "./errors.ts";

/** One trial: (variant, task, replica) with its reward, outcome class and turn counts. */
export interface TrialRecord {
  /** The model variant (arm). */
  readonly variant: string;
  /** Task name. */
  readonly taskId: string;
  /** Replica index, 0-based. */
  readonly replica: number;
  /** Reward in [0, 1]; null when the trial produced none. */
  readonly reward: number | null;
  /** Outcome class, e.g. `passed`, `failed`, `agent_timeout`, `environment_error`. */
  readonly outcome: string;
  /** Agent turns. */
  readonly turns: number;
  /** Turns whose response could not be parsed. */
  readonly parseErrors: number;
  /** Turns whose response had no `commands` key. */
  readonly noCmdTurns: number;
}

/**
 * Outcomes that are infrastructure failures: excluded from every score (not counted as 0), but
 * counted and shown. Matches the bench's `INFRA_OUTCOMES` and the leaderboard's rule that infra
 * exceptions are dropped (reference/terminal-bench.md §6).
 */
export const DEFAULT_INFRA_OUTCOMES: readonly string[] = ["environment_error", "llm_error"];

/**
 * A trial passes when its reward reaches this value. Terminal-Bench rewards are 0 or 1; a partial
 * reward below 1 counts toward the mean reward but not as a pass.
 */
export const PASS_REWARD = 1;

/** True when a scored trial counts as a pass. */
export function isPass(reward: number | null): boolean {
  return reward !== null && reward >= PASS_REWARD;
}

function field(obj: Record<string, unknown>, key: string, where: string): unknown {
  if (!(key in obj)) throw new StatsInputError(`${where}: missing field "${key}"`);
  return obj[key];
}

function count(obj: Record<string, unknown>, key: string, where: string): number {
  const v = field(obj, key, where);
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new StatsInputError(
      `${where}: "${key}" must be a non-negative integer, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

/**
 * Checks one parsed JSON value and returns the {@link TrialRecord} fields of it (extra fields of
 * a full bench record are dropped). `where` names the source in error messages.
 */
export function parseTrialRecord(value: unknown, where: string): TrialRecord {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new StatsInputError(`${where}: a trial record must be a JSON object`);
  }
  const obj = value as Record<string, unknown>;
  const variant = field(obj, "variant", where);
  const taskId = field(obj, "taskId", where);
  const outcome = field(obj, "outcome", where);
  const reward = field(obj, "reward", where);
  if (typeof variant !== "string" || variant === "") {
    throw new StatsInputError(`${where}: "variant" must be a non-empty string`);
  }
  if (typeof taskId !== "string" || taskId === "") {
    throw new StatsInputError(`${where}: "taskId" must be a non-empty string`);
  }
  if (typeof outcome !== "string" || outcome === "") {
    throw new StatsInputError(`${where}: "outcome" must be a non-empty string`);
  }
  if (reward !== null && (typeof reward !== "number" || !(reward >= 0 && reward <= 1))) {
    throw new StatsInputError(
      `${where}: "reward" must be null or in [0, 1], got ${JSON.stringify(reward)}`,
    );
  }
  return {
    variant,
    taskId,
    replica: count(obj, "replica", where),
    reward,
    outcome,
    turns: count(obj, "turns", where),
    parseErrors: count(obj, "parseErrors", where),
    noCmdTurns: count(obj, "noCmdTurns", where),
  };
}

/** Parses JSON Lines (one record per non-blank line); errors name the line number. */
export function parseTrialJsonl(text: string, source: string): TrialRecord[] {
  const out: TrialRecord[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new StatsInputError(`${source}:${i + 1}: not valid JSON`, { cause: err });
    }
    out.push(parseTrialRecord(value, `${source}:${i + 1}`));
  }
  return out;
}
