/**
 * The verifier (reference/terminal-bench.md §2.4, §9 item 11): with the agent's session and
 * background processes still running, wipe `/logs/verifier` (so nothing the agent wrote there
 * counts) and `/tests`, upload the task's `tests/`, run `/tests/test.sh` under the task's verifier
 * timeout with stdout and stderr captured, then read `reward.json` (a flat map; the `reward` key
 * or its only value) else `reward.txt`. `ctrf.json` and the logs are downloaded for the record.
 */
import { join } from "node:path";
import { collectFiles } from "./collect.ts";
import type { Environment } from "./environment.ts";
import { EnvironmentError } from "./errors.ts";
import type { Task } from "./task.ts";

/** What the verifier concluded. */
export interface VerifierResult {
  readonly outcome: "passed" | "failed" | "verifier_timeout" | "reward_missing";
  /** In [0, 1]; 0 for a timeout or a missing/unreadable reward (scored as 0, like the leaderboard). */
  readonly reward: number;
  /** The reward map as read (reward.json keys, or `{reward}` from reward.txt). */
  readonly rewards: Readonly<Record<string, number>>;
  /** Files of `/logs/verifier` (reward.*, ctrf.json, test-stdout.txt, test-stderr.txt). */
  readonly files: Readonly<Record<string, Uint8Array>>;
  readonly exitCode: number;
  readonly seconds: number;
  readonly detail: string;
}

/** Reads a reward from reward.json text; throws a message on a bad file. */
export function rewardFromJson(text: string): { reward: number; rewards: Record<string, number> } {
  const v = JSON.parse(text) as unknown;
  if (typeof v === "number") return { reward: v, rewards: { reward: v } };
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new Error("reward.json must be an object of numbers");
  }
  const rewards: Record<string, number> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "number" || !Number.isFinite(x))
      throw new Error(`reward.json: ${k} is not a number`);
    rewards[k] = x;
  }
  const keys = Object.keys(rewards);
  if ("reward" in rewards) return { reward: rewards.reward!, rewards };
  if (keys.length === 1) return { reward: rewards[keys[0]!]!, rewards };
  throw new Error(`reward.json has ${keys.length} keys and no "reward" key`);
}

/** Runs the verifier in a started environment. */
export async function runVerifier(
  env: Environment,
  task: Task,
  options: { signal?: AbortSignal; timeoutMultiplier?: number } = {},
): Promise<VerifierResult> {
  const started = performance.now();
  const sig = options.signal ? { signal: options.signal } : {};
  const wipe = await env.exec(
    "mkdir -p /logs/verifier /tests && find /logs/verifier /tests -mindepth 1 -delete",
    {
      cwd: "/",
      ...sig,
    },
  );
  if (wipe.exitCode !== 0)
    throw new EnvironmentError(`cannot reset /logs/verifier: ${wipe.stderr.trim()}`);
  await env.upload(join(task.dir, "tests"), "/tests", options.signal);
  const timeoutSec = task.config.verifierTimeoutSec * (options.timeoutMultiplier ?? 1);
  const run = await env.exec(
    "chmod +x /tests/test.sh; bash /tests/test.sh > /logs/verifier/test-stdout.txt 2> /logs/verifier/test-stderr.txt",
    { timeoutSec, env: task.config.verifierEnv, ...sig },
  );
  const files = await collectFiles(env, "/logs/verifier", options.signal);
  const seconds = (performance.now() - started) / 1000;
  const base = { files, exitCode: run.exitCode, seconds };
  if (run.timedOut) {
    return {
      ...base,
      outcome: "verifier_timeout",
      reward: 0,
      rewards: {},
      detail: `test.sh exceeded the verifier timeout of ${timeoutSec} s`,
    };
  }
  const dec = new TextDecoder();
  let parsed: { reward: number; rewards: Record<string, number> } | null = null;
  let problem = "";
  try {
    if (files["reward.json"]) parsed = rewardFromJson(dec.decode(files["reward.json"]));
    else if (files["reward.txt"]) {
      const text = dec.decode(files["reward.txt"]).trim();
      const r = Number(text);
      if (text === "" || !Number.isFinite(r))
        throw new Error(`reward.txt holds "${text.slice(0, 40)}", not a number`);
      parsed = { reward: r, rewards: { reward: r } };
    } else problem = `test.sh (exit ${run.exitCode}) wrote neither reward.json nor reward.txt`;
  } catch (err) {
    problem = (err as Error).message;
  }
  if (parsed && (parsed.reward < 0 || parsed.reward > 1)) {
    problem = `reward ${parsed.reward} is outside [0, 1]`;
    parsed = null;
  }
  if (!parsed)
    return { ...base, outcome: "reward_missing", reward: 0, rewards: {}, detail: problem };
  return {
    ...base,
    outcome: parsed.reward >= 1 ? "passed" : "failed",
    reward: parsed.reward,
    rewards: parsed.rewards,
    detail: `reward ${parsed.reward} (test.sh exit ${run.exitCode})`,
  };
}
