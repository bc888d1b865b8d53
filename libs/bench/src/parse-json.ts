/**
 * The Terminus-2 JSON response parser (reference/terminal-bench.md §4.3–4.4), rewritten from the
 * documented rules: take the first top-level balanced `{…}` (string- and escape-aware), warn
 * about text around it, and when that fails try the two upstream repairs in order — (a) close
 * missing braces, (b) the first object with at most one nesting level that parses — accepting a
 * repaired response with an AUTO-CORRECTED warning. An empty `commands` list is valid (wait); a
 * missing one is an error. `acceptSplitJson` (an extension, off by default) takes a later object
 * that carries `commands` as the action when the first one lacks it.
 */

/** One batch entry: keys to send and seconds to wait afterwards. */
export interface AgentCommand {
  readonly keystrokes: string;
  readonly duration: number;
}

/** What one model response asks for. */
export interface AgentAction {
  readonly analysis: string;
  readonly plan: string;
  readonly commands: readonly AgentCommand[];
  readonly taskComplete: boolean;
}

/** The parser's verdict on one response. */
export type ParseResult =
  | { readonly ok: true; readonly action: AgentAction; readonly warnings: readonly string[] }
  | {
      readonly ok: false;
      readonly error: string;
      readonly warnings: readonly string[];
      /** The response had no `commands` at all (counts toward `noCmdTurns`). */
      readonly commandsMissing: boolean;
    };

/** Parser switches; all default to upstream behaviour. */
export interface ParseOptions {
  /** Extension: a later object carrying `commands` is taken as the action. */
  readonly acceptSplitJson?: boolean;
}

/** Default `duration` when a command omits it (upstream: 1.0 s). */
export const DEFAULT_COMMAND_DURATION_SEC = 1.0;

const KNOWN_KEYS = ["analysis", "plan", "commands", "task_complete"];

interface Scan {
  /** Index of the first `{`, or -1. */
  start: number;
  /** Index just past the matching `}`, or -1 when unbalanced. */
  end: number;
  /** Unclosed `{` count at the end of text when unbalanced. */
  depth: number;
}

/** Finds the first top-level balanced object from `from`, skipping braces inside strings. */
function scanObject(text: string, from = 0): Scan {
  const start = text.indexOf("{", from);
  if (start < 0) return { start: -1, end: -1, depth: 0 };
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === "\\") escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === "{") depth++;
    else if (c === "}") {
      depth--;
      if (depth === 0) return { start, end: i + 1, depth: 0 };
    }
  }
  return { start, end: -1, depth };
}

function tryJson(text: string): { value: unknown } | { error: string } {
  try {
    return { value: JSON.parse(text) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** Parses `task_complete`: a bool, or one of the strings "true", "1", "yes". */
export function parseTaskComplete(v: unknown): boolean {
  if (typeof v === "boolean") return v;
  if (typeof v === "string") return ["true", "1", "yes"].includes(v.trim().toLowerCase());
  if (typeof v === "number") return v === 1;
  return false;
}

/** Validates a parsed object into an action, or an error message. */
function validate(
  obj: Obj,
  warnings: string[],
): { action: AgentAction } | { error: string; commandsMissing: boolean } {
  const missing = ["analysis", "plan", "commands"].filter((k) => !(k in obj));
  const complete = parseTaskComplete(obj.task_complete);
  if (missing.length > 0) {
    if (complete && !missing.includes("analysis") && !missing.includes("plan")) {
      warnings.push("Missing commands; none run because the task is marked complete");
    } else {
      return {
        error: `Missing required fields: ${missing.join(", ")}`,
        commandsMissing: missing.includes("commands"),
      };
    }
  }
  for (const k of ["analysis", "plan"]) {
    if (k in obj && typeof obj[k] !== "string") warnings.push(`Field '${k}' should be a string`);
  }
  const unknown = Object.keys(obj).filter((k) => !KNOWN_KEYS.includes(k));
  if (unknown.length > 0) warnings.push(`Unknown fields: ${unknown.join(", ")}`);
  const order = Object.keys(obj).filter((k) => ["analysis", "plan", "commands"].includes(k));
  const expected = ["analysis", "plan", "commands"].filter((k) => order.includes(k));
  if (order.join() !== expected.join()) {
    warnings.push(
      `Fields should appear in the order analysis, plan, commands (got ${order.join(", ")})`,
    );
  }
  const commands: AgentCommand[] = [];
  const cmdErrors: string[] = [];
  const raw = obj.commands;
  if (raw !== undefined && !Array.isArray(raw)) {
    cmdErrors.push("Field 'commands' must be an array");
  } else if (Array.isArray(raw)) {
    raw.forEach((item, i) => {
      if (!isObj(item) || typeof item.keystrokes !== "string") {
        cmdErrors.push(`Command ${i + 1} must be an object with a string 'keystrokes'`);
        return;
      }
      let duration = DEFAULT_COMMAND_DURATION_SEC;
      if (!("duration" in item)) {
        warnings.push(`Command ${i + 1}: missing duration, using ${DEFAULT_COMMAND_DURATION_SEC}`);
      } else if (typeof item.duration !== "number" || !Number.isFinite(item.duration)) {
        warnings.push(
          `Command ${i + 1}: duration is not a number, using ${DEFAULT_COMMAND_DURATION_SEC}`,
        );
      } else duration = Math.max(0, item.duration);
      const extra = Object.keys(item).filter((k) => k !== "keystrokes" && k !== "duration");
      if (extra.length > 0) warnings.push(`Command ${i + 1}: unknown fields ${extra.join(", ")}`);
      if (i < raw.length - 1 && !item.keystrokes.endsWith("\n")) {
        warnings.push(
          `Command ${i + 1} should end with a newline, or it runs together with the next command`,
        );
      }
      commands.push({ keystrokes: item.keystrokes, duration });
    });
  }
  if (cmdErrors.length > 0) {
    if (!complete) return { error: cmdErrors.join("; "), commandsMissing: false };
    warnings.push(...cmdErrors);
  }
  return {
    action: {
      analysis: typeof obj.analysis === "string" ? obj.analysis : String(obj.analysis ?? ""),
      plan: typeof obj.plan === "string" ? obj.plan : String(obj.plan ?? ""),
      // On a first completion the commands still run; the loop skips them once confirmed.
      commands,
      taskComplete: complete,
    },
  };
}

/** One attempt: first balanced object, JSON.parse, validation. */
function attempt(
  text: string,
  warnings: string[],
): { action: AgentAction } | { error: string; commandsMissing: boolean; syntax: boolean } {
  const scan = scanObject(text);
  if (scan.start < 0)
    return { error: "No valid JSON found in response", commandsMissing: true, syntax: true };
  if (scan.end < 0) {
    return { error: "Invalid JSON: unterminated object", commandsMissing: false, syntax: true };
  }
  if (text.slice(0, scan.start).trim() !== "")
    warnings.push("Extra text detected before JSON object");
  if (text.slice(scan.end).trim() !== "") warnings.push("Extra text detected after JSON object");
  const parsed = tryJson(text.slice(scan.start, scan.end));
  if ("error" in parsed)
    return { error: `Invalid JSON: ${parsed.error}`, commandsMissing: false, syntax: true };
  if (!isObj(parsed.value))
    return { error: "Response JSON must be an object", commandsMissing: true, syntax: false };
  const v = validate(parsed.value, warnings);
  return "action" in v ? v : { ...v, syntax: false };
}

/** Repair (a): append the missing closing braces. */
function closeBraces(text: string): string | null {
  const scan = scanObject(text);
  if (scan.start < 0 || scan.end >= 0 || scan.depth <= 0) return null;
  return text.slice(scan.start) + "}".repeat(scan.depth);
}

/** Repair (b): the first `{…}` with at most one nesting level that parses as JSON. */
function firstParseableObject(text: string): string | null {
  const re = /\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}/g;
  for (const m of text.matchAll(re)) {
    if ("value" in tryJson(m[0])) return m[0];
  }
  return null;
}

/** Extension: the first later top-level object that has a `commands` key. */
function splitJsonAction(text: string, warnings: string[]): AgentAction | null {
  const first = scanObject(text);
  if (first.end < 0) return null;
  const head = tryJson(text.slice(first.start, first.end));
  const headObj = "value" in head && isObj(head.value) ? head.value : {};
  let from = first.end;
  for (;;) {
    const s = scanObject(text, from);
    if (s.start < 0 || s.end < 0) return null;
    const p = tryJson(text.slice(s.start, s.end));
    if ("value" in p && isObj(p.value) && "commands" in p.value) {
      const merged: Obj = {
        analysis: headObj.analysis ?? "",
        plan: headObj.plan ?? "",
        ...p.value,
      };
      const local: string[] = [];
      const v = validate(merged, local);
      if (!("action" in v)) return null;
      warnings.push(
        ...local,
        "SPLIT-JSON: took commands from a later JSON object (acceptSplitJson)",
      );
      return v.action;
    }
    from = s.end;
  }
}

/** Parses one model response under the Terminus-2 JSON rules. */
export function parseJsonResponse(text: string, options: ParseOptions = {}): ParseResult {
  const warnings: string[] = [];
  const first = attempt(text, warnings);
  if ("action" in first) return { ok: true, action: first.action, warnings };
  if (options.acceptSplitJson && first.commandsMissing) {
    const split = splitJsonAction(text, warnings);
    if (split) return { ok: true, action: split, warnings };
  }
  const fixes: (string | null)[] = [];
  if (first.syntax) fixes.push(closeBraces(text));
  fixes.push(firstParseableObject(text));
  for (const fixed of fixes) {
    if (fixed === null) continue;
    const w: string[] = [];
    const r = attempt(fixed, w);
    if ("action" in r) {
      return {
        ok: true,
        action: r.action,
        warnings: [
          ...w,
          `AUTO-CORRECTED: ${first.error}; the response was repaired, please fix this in future responses`,
        ],
      };
    }
  }
  return { ok: false, error: first.error, warnings, commandsMissing: first.commandsMissing };
}
