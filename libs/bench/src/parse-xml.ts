/**
 * The Terminus-2 XML response parser (reference/terminal-bench.md §4.8):
 * `<response><analysis/><plan/><commands><keystrokes duration="…">…</keystrokes>…</commands>
 * <task_complete>true</task_complete></response>`. Keystrokes are raw text (not XML-escaped). A
 * missing `</response>` is appended; only the first `<response>` runs; an empty `<commands>` is a
 * warning (wait); a missing `<commands>` is an error unless the task is complete.
 */
import {
  type AgentCommand,
  DEFAULT_COMMAND_DURATION_SEC,
  type ParseResult,
  parseTaskComplete,
} from "./parse-json.ts";

function section(body: string, tag: string): string | null {
  const open = new RegExp(`<${tag}(\\s[^>]*)?>`);
  const m = open.exec(body);
  if (!m) return null;
  const close = body.indexOf(`</${tag}>`, m.index + m[0].length);
  if (close < 0) return null;
  return body.slice(m.index + m[0].length, close);
}

/** Parses one model response under the Terminus-2 XML rules. */
export function parseXmlResponse(text: string): ParseResult {
  const warnings: string[] = [];
  const start = text.indexOf("<response>");
  if (start < 0) {
    return { ok: false, error: "No <response> block found", warnings, commandsMissing: true };
  }
  if (text.slice(0, start).trim() !== "") warnings.push("Extra text detected before <response>");
  let end = text.indexOf("</response>", start);
  let body: string;
  if (end < 0) {
    warnings.push("Missing </response> closing tag was added automatically");
    body = text.slice(start + "<response>".length);
    end = text.length;
  } else {
    body = text.slice(start + "<response>".length, end);
    const after = text.slice(end + "</response>".length);
    if (after.includes("<response>")) {
      warnings.push("Only the first <response> block is executed; later blocks were ignored");
    } else if (after.trim() !== "") warnings.push("Extra text detected after </response>");
  }
  const analysis = section(body, "analysis");
  const plan = section(body, "plan");
  if (analysis === null) warnings.push("Missing <analysis> section");
  if (plan === null) warnings.push("Missing <plan> section");
  let complete = false;
  if (/<task_complete\s*\/>/.test(body)) complete = false;
  else {
    const tc = section(body, "task_complete");
    if (tc !== null) complete = parseTaskComplete(tc.trim());
  }
  const cmdBody = /<commands\s*\/>/.test(body) ? "" : section(body, "commands");
  if (cmdBody === null) {
    if (!complete) {
      return { ok: false, error: "Missing <commands> section", warnings, commandsMissing: true };
    }
    warnings.push("Missing <commands> section; none run because the task is marked complete");
  }
  const commands: AgentCommand[] = [];
  if (cmdBody !== null) {
    const re = /<keystrokes(\s[^>]*)?>([\s\S]*?)<\/keystrokes>/g;
    const items = [...cmdBody.matchAll(re)];
    if (items.length === 0) warnings.push("Commands section is empty; not taking any action");
    items.forEach((m, i) => {
      const attrs = m[1] ?? "";
      const d = /duration\s*=\s*["']([^"']*)["']/.exec(attrs);
      let duration = DEFAULT_COMMAND_DURATION_SEC;
      if (!d) {
        warnings.push(`Command ${i + 1}: missing duration, using ${DEFAULT_COMMAND_DURATION_SEC}`);
      } else if (!Number.isFinite(Number(d[1])) || d[1]!.trim() === "") {
        warnings.push(
          `Command ${i + 1}: duration "${d[1]}" is not a number, using ${DEFAULT_COMMAND_DURATION_SEC}`,
        );
      } else duration = Math.max(0, Number(d[1]));
      const keys = m[2]!;
      if (i < items.length - 1 && !keys.endsWith("\n")) {
        warnings.push(
          `Command ${i + 1} should end with a newline, or it runs together with the next command`,
        );
      }
      commands.push({ keystrokes: keys, duration });
    });
  }
  return {
    ok: true,
    action: {
      analysis: (analysis ?? "").trim(),
      plan: (plan ?? "").trim(),
      commands,
      taskComplete: complete,
    },
    warnings,
  };
}
