/**
 * Contrast sets: prompts in two buckets, `refuse` (the behaviour to remove) and `comply`.
 */
import { createHash } from "node:crypto";

/** One prompt of a contrast set. Prompts with the same `group` always land in the same split. */
export interface ContrastPrompt {
  /** Where it came from, e.g. `agent-shell#3` or `harmful.jsonl#17`. */
  readonly id: string;
  readonly group: string;
  readonly user: string;
  readonly system?: string;
}

/** The two buckets. */
export type Bucket = "refuse" | "comply";

/** Both buckets. */
export const BUCKETS: readonly Bucket[] = ["refuse", "comply"];

/** A loaded contrast set. */
export interface ContrastSet {
  readonly name: string;
  readonly refuse: readonly ContrastPrompt[];
  readonly comply: readonly ContrastPrompt[];
}

/** A chat message in the OpenAI shape. */
export interface ChatMessage {
  readonly role: "system" | "user" | "assistant";
  readonly content: string;
}

/** The chat messages a prompt is asked as. */
export function promptMessages(p: ContrastPrompt): ChatMessage[] {
  return p.system === undefined
    ? [{ role: "user", content: p.user }]
    : [
        { role: "system", content: p.system },
        { role: "user", content: p.user },
      ];
}

function canonical(prompts: readonly ContrastPrompt[]): [string | null, string][] {
  return prompts.map((p) => [p.system ?? null, p.user]);
}

/** sha256 (hex) of the prompts' text content, in order; ids and groups do not count. */
export function promptsDigest(
  refuse: readonly ContrastPrompt[],
  comply: readonly ContrastPrompt[],
): string {
  return createHash("sha256")
    .update(JSON.stringify({ refuse: canonical(refuse), comply: canonical(comply) }))
    .digest("hex");
}
