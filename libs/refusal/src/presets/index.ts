import type { ContrastPrompt, ContrastSet } from "../contrast-set.ts";
import { AGENT_SHELL_SYSTEM_PROMPT, AGENT_SHELL_TASKS } from "./agent-shell.ts";
import { HARMFUL_PROMPTS, HARMLESS_PROMPTS } from "./harmful-harmless.ts";

/** Names of the contrast sets shipped with the project. */
export const PRESET_NAMES = ["agent-shell", "harmful-harmless"] as const;

/** A shipped contrast set's name. */
export type PresetName = (typeof PRESET_NAMES)[number];

/** Whether `name` is a shipped preset. */
export function isPresetName(name: string): name is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(name);
}

/** The shipped contrast set of that name. */
export function presetContrastSet(name: PresetName): ContrastSet {
  if (name === "agent-shell") {
    // Same task in both buckets, same group: the only difference is the agent system prompt.
    const refuse: ContrastPrompt[] = AGENT_SHELL_TASKS.map((user, i) => ({
      id: `agent-shell#${i}`,
      group: `agent-shell/${i}`,
      user,
    }));
    const comply: ContrastPrompt[] = AGENT_SHELL_TASKS.map((user, i) => ({
      id: `agent-shell#${i}`,
      group: `agent-shell/${i}`,
      user,
      system: AGENT_SHELL_SYSTEM_PROMPT,
    }));
    return { name, refuse, comply };
  }
  return {
    name,
    refuse: HARMFUL_PROMPTS.map((user, i) => ({ id: `harmful#${i}`, group: `harmful/${i}`, user })),
    comply: HARMLESS_PROMPTS.map((user, i) => ({
      id: `harmless#${i}`,
      group: `harmless/${i}`,
      user,
    })),
  };
}
