/**
 * Prompt texts for the Terminus-2 protocol, written for this project after the structure upstream
 * uses (reference/terminal-bench.md §4.2, §4.5, §4.7): one user message with the instruction and
 * the terminal state, error and warning feedback, the completion confirmation, the output-length
 * notice, and the three summarization prompts.
 */

const JSON_FORMAT = `Reply with one JSON object in this shape:
{
  "analysis": "What the terminal shows and what it means for the task so far.",
  "plan": "What you will do next, and why.",
  "commands": [
    {"keystrokes": "ls -la\\n", "duration": 0.1},
    {"keystrokes": "cd src\\n", "duration": 0.1}
  ],
  "task_complete": false
}

Fields:
- "analysis" (string, required).
- "plan" (string, required).
- "commands" (array, required, may be empty to just wait). Each item has "keystrokes" (a string typed into the terminal exactly as written) and "duration" (seconds to wait after sending it; 1.0 when left out).
- "task_complete" (boolean, optional, false by default): true once the task is fully done.`;

const XML_FORMAT = `Reply with one <response> block in this shape:
<response>
<analysis>What the terminal shows and what it means for the task so far.</analysis>
<plan>What you will do next, and why.</plan>
<commands>
<keystrokes duration="0.1">ls -la
</keystrokes>
<keystrokes duration="0.1">cd src
</keystrokes>
</commands>
<task_complete>false</task_complete>
</response>

Sections:
- <analysis> and <plan>: free text.
- <commands> (required, may be empty to just wait): each <keystrokes> element holds text typed into the terminal exactly as written (do not escape it as XML); its duration attribute is the seconds to wait after sending it (1.0 when left out).
- <task_complete> (optional, false by default): true once the task is fully done.`;

const RULES = `Rules:
- Keystrokes are typed verbatim. End each shell command with a newline so that it runs.
- For special keys send the tmux key name as the whole keystrokes text, e.g. C-c to interrupt or C-d for end of input.
- Match the duration to the command: about 0.1 s for quick commands (cd, ls, cat), 1 s for short scripts or compiles, longer for slow work. Never wait more than 60 seconds in one command; to keep waiting, send empty keystrokes with a duration and look again.
- Text around the reply is tolerated, but the reply itself must be well-formed.`;

/** The protocol variant. */
export type TerminusFormat = "json" | "xml";

/** The first (and only template) user message. */
export function initialPrompt(
  format: TerminusFormat,
  instruction: string,
  terminal: string,
): string {
  return `You solve tasks in a Linux command-line environment. You work by sending batches of keystrokes to a terminal and reading the output that follows.

${format === "json" ? JSON_FORMAT : XML_FORMAT}

${RULES}

Task:
${instruction.trim()}

Current terminal state:
${terminal}
`;
}

/** Feedback after an unparseable response: no keys were sent, no terminal state. */
export function parseErrorPrompt(
  format: TerminusFormat,
  error: string,
  warnings: readonly string[],
): string {
  const w = warnings.length > 0 ? `\nWARNINGS: ${warnings.join("; ")}` : "";
  const what = format === "json" ? "a valid JSON object" : "a valid <response> block";
  return `Previous response had parsing errors:\nERROR: ${error}${w}\n\nNothing was sent to the terminal. Please fix these issues and reply with ${what} in the required format.`;
}

/** Prefix of the observation when the response parsed with warnings. */
export function warningsPrefix(warnings: readonly string[]): string {
  return `Previous response had warnings:\nWARNINGS: ${warnings.join("; ")}\n\n`;
}

/** The double-confirmation question after a first `task_complete`. */
export function confirmationPrompt(format: TerminusFormat, observation: string): string {
  const again = format === "json" ? '"task_complete": true' : "<task_complete>true</task_complete>";
  return `${observation}\n\nYou marked the task as complete. Are you sure? Once you confirm, your solution is graded and you cannot change anything afterwards. If it is really done, reply again with ${again}; otherwise continue working.`;
}

/** Sent when the reply was cut at the output-token limit. */
export function lengthExceededPrompt(): string {
  return "Your reply was cut off because it exceeded the output length limit, so none of its actions were run. Please send a shorter reply, splitting large file contents into several smaller commands.";
}

/** Asks for a summary of the work so far (subagent 1, on the existing history). */
export function summaryRequestPrompt(): string {
  return "The conversation is about to run out of context. Write a detailed summary of the work so far: what the task is, what you have tried, what you found, which files you changed or created and how, what is finished, and what remains. Another instance of you will continue from this summary alone.";
}

/** Asks a fresh instance for questions about the state (subagent 2). */
export function questionsPrompt(instruction: string, summary: string, screen: string): string {
  return `You are taking over a command-line task from another instance of yourself that ran out of context.

Task:
${instruction.trim()}

Summary from the previous instance:
${summary}

Current terminal screen:
${screen}

Before continuing, ask at least five specific questions about the current state that the summary leaves open and that you need answered to finish the task. Reply with the questions only.`;
}

/** Asks the original history to answer the questions (subagent 3). */
export function answersPrompt(questions: string): string {
  return `The instance continuing your work asks these questions. Answer each one as precisely as you can:\n\n${questions}`;
}

/** Hands control back to the main loop after summarization. */
export function handoffPrompt(answers: string, terminal: string): string {
  return `Answers from the previous instance:\n${answers}\n\nContinue working on the task with the same reply format as before.\n\nCurrent terminal state:\n${terminal}`;
}
