/**
 * The Terminus-2 agent (reference/terminal-bench.md §4), JSON or XML: one tmux session, a
 * single-user-message conversation, commands sent non-blocking with sleeps capped at 60 s,
 * incremental output limited to 10 KB, double confirmation of completion, no turn cap by default,
 * and summarization (summary → questions → answers) when the context fills. Extensions are off by
 * default and reported in `info.flags`: `acceptSplitJson`, `maxTurns`, `maxTokens`, temperature.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Agent, AgentContext, TurnRecord } from "./agent.ts";
import { ContextLengthError, LlmError } from "./errors.ts";
import type { ChatCompletion, ChatMessage, LlmClient } from "./llm-client.ts";
import { type ParseResult, parseJsonResponse } from "./parse-json.ts";
import { parseXmlResponse } from "./parse-xml.ts";
import { incrementalOutput, limitOutput } from "./terminal-output.ts";
import {
  answersPrompt,
  confirmationPrompt,
  handoffPrompt,
  initialPrompt,
  lengthExceededPrompt,
  parseErrorPrompt,
  questionsPrompt,
  summaryRequestPrompt,
  type TerminusFormat,
  warningsPrefix,
} from "./terminus-prompts.ts";
import { TmuxSession } from "./tmux-session.ts";

/** Harness version recorded with every result. */
export const TERMINUS_VERSION = "terminus-2@2.0.0-ts";
/** Upstream never waits longer than this after one command. */
export const MAX_COMMAND_DURATION_SEC = 60;
/** Upstream's proactive summarization margin: summarize when fewer tokens than this are left. */
export const PROACTIVE_SUMMARY_MARGIN_TOKENS = 8000;
/** Characters of the screen used for the last-resort short summary (upstream: 1000). */
const SHORT_SUMMARY_CHARS = 1000;
/** Summarizations in a row without a successful turn before giving up (an LLM error). */
const MAX_SUMMARIES_IN_A_ROW = 3;

/** Options of {@link createTerminusAgent}. */
export interface TerminusOptions {
  readonly format: TerminusFormat;
  readonly llm: LlmClient;
  /** Extension: take a later JSON object carrying `commands` as the action. */
  readonly acceptSplitJson?: boolean;
  /** Extension: stop after this many turns (upstream has no cap). */
  readonly maxTurns?: number;
  /** The model's context window, for proactive summarization; unknown means passive only. */
  readonly contextLimitTokens?: number;
  /** Summarize when the context fills (upstream default true). */
  readonly enableSummarize?: boolean;
}

/** Creates a Terminus-2 agent over an LLM client. */
export function createTerminusAgent(options: TerminusOptions): Agent {
  const { format, llm } = options;
  const flags: Record<string, string | number | boolean | null> = {};
  if (options.acceptSplitJson) flags.acceptSplitJson = true;
  if (options.maxTurns !== undefined) flags.maxTurns = options.maxTurns;
  if (llm.sampling.max_tokens !== undefined) flags.maxTokens = llm.sampling.max_tokens;
  if (llm.sampling.temperature !== undefined) flags.temperature = llm.sampling.temperature;
  if (options.enableSummarize === false) flags.enableSummarize = false;
  const parse = (text: string): ParseResult =>
    format === "json"
      ? parseJsonResponse(text, { acceptSplitJson: options.acceptSplitJson ?? false })
      : parseXmlResponse(text);

  return {
    info: { name: `terminus-${format}`, version: TERMINUS_VERSION, flags },
    model: { endpoint: llm.endpoint, name: llm.model, sampling: { ...llm.sampling } },
    async run(ctx: AgentContext) {
      const { stats, signal, env, task } = ctx;
      const session = new TmuxSession(env);
      await session.start(signal);
      await sleep(200, undefined, { signal });
      let screen = await session.capture(false, signal);
      let prevFull = await session.capture(true, signal);
      let messages: ChatMessage[] = [];
      let prompt = initialPrompt(
        format,
        task.instruction,
        `Current Terminal Screen:\n${limitOutput(screen.trimEnd())}`,
      );
      let pending = false;
      let lastContextTokens = 0;
      let summariesInARow = 0;
      const maxTurns = options.maxTurns ?? Number.POSITIVE_INFINITY;

      const chat = async (msgs: readonly ChatMessage[]): Promise<ChatCompletion> => {
        const c = await llm.chat(msgs, signal);
        stats.tokensIn += c.tokensIn;
        stats.tokensOut += c.tokensOut;
        stats.llmSec += c.latencySec;
        return c;
      };

      /** Summarize and reset the conversation; returns the next prompt. */
      const summarize = async (): Promise<string> => {
        stats.summarizations++;
        summariesInARow++;
        if (summariesInARow > MAX_SUMMARIES_IN_A_ROW) {
          throw new LlmError(
            `context still overflows after ${MAX_SUMMARIES_IN_A_ROW} summarizations in a row`,
          );
        }
        const startedAt = new Date().toISOString();
        // Subagent 1: summary on the history, unwinding the oldest pairs until it fits.
        let hist = messages.slice();
        let summary: string | null = null;
        while (hist.length > 0) {
          try {
            summary = (await chat([...hist, { role: "user", content: summaryRequestPrompt() }]))
              .content;
            break;
          } catch (err) {
            if (!(err instanceof ContextLengthError)) throw err;
            hist = hist.length > 2 ? [hist[0]!, ...hist.slice(3)] : [];
          }
        }
        const screenNow = limitOutput((await session.capture(false, signal)).trimEnd());
        summary ??= `(no summary could be made; the last screen was)\n${screenNow.slice(-SHORT_SUMMARY_CHARS)}`;
        // Subagent 2: questions from a fresh context.
        const qPrompt = questionsPrompt(task.instruction, summary, screenNow);
        let questions: string | null = null;
        try {
          questions = (await chat([{ role: "user", content: qPrompt }])).content;
        } catch (err) {
          if (!(err instanceof ContextLengthError)) throw err;
        }
        // Subagent 3: answers from the (unwound) history.
        let answers = summary;
        if (questions !== null && hist.length > 0) {
          try {
            answers = (
              await chat([
                ...hist,
                { role: "user", content: summaryRequestPrompt() },
                { role: "assistant", content: summary },
                { role: "user", content: answersPrompt(questions) },
              ])
            ).content;
          } catch (err) {
            if (!(err instanceof ContextLengthError)) throw err;
          }
        }
        await ctx.onTurn({
          turn: stats.turns,
          kind: "summarization",
          startedAt,
          prompt: qPrompt,
          response: `SUMMARY:\n${summary}\n\nQUESTIONS:\n${questions ?? ""}\n\nANSWERS:\n${answers}`,
          reasoning: null,
          finishReason: null,
          parse: { ok: true, warnings: [] },
          commands: [],
          taskComplete: false,
          llmSec: 0,
          tokensIn: 0,
          tokensOut: 0,
        });
        lastContextTokens = 0;
        const terminal = `Current Terminal Screen:\n${screenNow}`;
        if (questions === null) {
          messages = [];
          return `${initialPrompt(format, task.instruction, terminal)}\nSummary of earlier work:\n${summary}\n`;
        }
        messages = [
          { role: "user", content: qPrompt },
          { role: "assistant", content: questions },
        ];
        return handoffPrompt(answers, terminal);
      };

      while (stats.turns < maxTurns) {
        signal.throwIfAborted();
        if (!(await session.alive(signal))) {
          stats.stopReason = "session_gone";
          return;
        }
        if (
          options.enableSummarize !== false &&
          options.contextLimitTokens !== undefined &&
          messages.length > 0 &&
          options.contextLimitTokens - lastContextTokens < PROACTIVE_SUMMARY_MARGIN_TOKENS
        ) {
          prompt = await summarize();
        }
        const startedAt = new Date().toISOString();
        let completion: ChatCompletion;
        try {
          completion = await chat([...messages, { role: "user", content: prompt }]);
        } catch (err) {
          if (
            err instanceof ContextLengthError &&
            options.enableSummarize !== false &&
            messages.length > 0
          ) {
            prompt = await summarize();
            continue;
          }
          throw err;
        }
        summariesInARow = 0;
        stats.turns++;
        lastContextTokens = completion.tokensIn + completion.tokensOut;
        messages.push(
          { role: "user", content: prompt },
          { role: "assistant", content: completion.content },
        );
        const base = {
          turn: stats.turns,
          kind: "turn" as const,
          startedAt,
          prompt,
          response: completion.content,
          reasoning: completion.reasoningContent,
          finishReason: completion.finishReason,
          llmSec: completion.latencySec,
          tokensIn: completion.tokensIn,
          tokensOut: completion.tokensOut,
        };
        const parsed = parse(completion.content);
        if (completion.finishReason === "length" && !(format === "xml" && parsed.ok)) {
          stats.parseErrors++;
          prompt = lengthExceededPrompt();
          pending = false;
          await ctx.onTurn({
            ...base,
            parse: { ok: false, error: "output length exceeded", warnings: [] },
            commands: [],
            taskComplete: false,
          } satisfies TurnRecord);
          continue;
        }
        if (!parsed.ok) {
          stats.parseErrors++;
          if (parsed.commandsMissing) stats.noCmdTurns++;
          stats.warnings += parsed.warnings.length;
          prompt = parseErrorPrompt(format, parsed.error, parsed.warnings);
          pending = false;
          await ctx.onTurn({
            ...base,
            parse: { ok: false, error: parsed.error, warnings: parsed.warnings },
            commands: [],
            taskComplete: false,
          });
          continue;
        }
        const { action, warnings } = parsed;
        stats.warnings += warnings.length;
        if (action.taskComplete && pending) {
          stats.stopReason = "completed";
          await ctx.onTurn({
            ...base,
            parse: { ok: true, warnings },
            commands: [],
            taskComplete: true,
          });
          return;
        }
        const sent: { keystrokes: string; duration: number }[] = [];
        for (const c of action.commands) {
          const duration = Math.min(c.duration, MAX_COMMAND_DURATION_SEC);
          await session.sendKeys(c.keystrokes, signal);
          sent.push({ keystrokes: c.keystrokes, duration });
          await sleep(duration * 1000, undefined, { signal });
        }
        const full = await session.capture(true, signal);
        screen = await session.capture(false, signal);
        const observation = incrementalOutput(prevFull, full, screen);
        prevFull = full;
        pending = action.taskComplete;
        prompt = pending ? confirmationPrompt(format, observation) : observation;
        if (warnings.length > 0) prompt = warningsPrefix(warnings) + prompt;
        await ctx.onTurn({
          ...base,
          parse: { ok: true, warnings },
          commands: sent,
          taskComplete: action.taskComplete,
        });
      }
      stats.stopReason = "max_turns";
    },
  };
}
