/**
 * The agent's terminal: one tmux session named `terminus-2`, 160×40, running `bash --login`, with
 * a 10,000,000-line history and its output piped to `/logs/agent/terminus_2.pane`
 * (reference/terminal-bench.md §4.1). Keys are sent non-blocking in chunks below tmux's command
 * size limit (§4.5, tmux#254).
 */
import type { Environment } from "./environment.ts";
import { EnvironmentError } from "./errors.ts";

/** The upstream session name. */
export const SESSION_NAME = "terminus-2";
/**
 * Largest piece of keystrokes sent in one `send-keys` (bytes). tmux rejects commands near 16 KiB
 * ("command too long"); 4 KiB leaves room for the rest of the command and multi-byte text.
 */
export const MAX_SEND_KEYS_BYTES = 4096;

/** A tmux key name such as `C-c`, `Enter`, `Up`, `M-x`, `F5`: sent as a key, not as text. */
const KEY_NAME =
  /^(?:[CMS]-)+\S$|^(?:[CMS]-)*(?:Enter|Escape|Tab|BSpace|Space|Up|Down|Left|Right|Home|End|PageUp|PageDown|PPage|NPage|Delete|Insert|BTab|F\d{1,2})$/;

/** Splits text into pieces of at most `limit` UTF-8 bytes, never inside a character. */
export function chunkKeystrokes(text: string, limit = MAX_SEND_KEYS_BYTES): string[] {
  const out: string[] = [];
  let cur = "";
  let bytes = 0;
  for (const ch of text) {
    const b = Buffer.byteLength(ch);
    if (bytes + b > limit && cur !== "") {
      out.push(cur);
      cur = "";
      bytes = 0;
    }
    cur += ch;
    bytes += b;
  }
  if (cur !== "") out.push(cur);
  return out;
}

/** The agent's tmux session inside an environment. */
export class TmuxSession {
  constructor(private readonly env: Environment) {}

  private async tmux(args: string[], what: string, signal?: AbortSignal): Promise<string> {
    const r = await this.env.tmux(args, signal);
    if (r.exitCode !== 0) {
      throw new EnvironmentError(`tmux ${what} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
    }
    return r.stdout;
  }

  /** Creates the session (and the pane log). */
  async start(signal?: AbortSignal): Promise<void> {
    const cwd = this.env.workdir ? ["-c", this.env.workdir] : [];
    // One command list: new-session starts the server when none runs (docker, kubernetes), and
    // the history limit must be set before the pane exists to apply to it.
    await this.tmux(
      [
        "set-option",
        "-g",
        "history-limit",
        "10000000",
        ";",
        "new-session",
        "-d",
        "-s",
        SESSION_NAME,
        "-x",
        "160",
        "-y",
        "40",
        ...cwd,
        "bash --login",
      ],
      "new-session",
      signal,
    );
    await this.tmux(
      ["pipe-pane", "-t", SESSION_NAME, "cat >> /logs/agent/terminus_2.pane"],
      "pipe-pane",
      signal,
    );
  }

  /** True while the session exists. */
  async alive(signal?: AbortSignal): Promise<boolean> {
    return (await this.env.tmux(["has-session", "-t", SESSION_NAME], signal)).exitCode === 0;
  }

  /** Sends keystrokes without waiting: a lone key name as a key, anything else as literal text. */
  async sendKeys(keystrokes: string, signal?: AbortSignal): Promise<void> {
    if (keystrokes === "") return;
    if (KEY_NAME.test(keystrokes)) {
      await this.tmux(["send-keys", "-t", SESSION_NAME, keystrokes], "send-keys", signal);
      return;
    }
    for (const chunk of chunkKeystrokes(keystrokes)) {
      await this.tmux(["send-keys", "-t", SESSION_NAME, "-l", "--", chunk], "send-keys", signal);
    }
  }

  /** The visible screen, or the whole scrollback with `full`. */
  async capture(full: boolean, signal?: AbortSignal): Promise<string> {
    const range = full ? ["-S", "-"] : [];
    return this.tmux(["capture-pane", "-p", "-t", SESSION_NAME, ...range], "capture-pane", signal);
  }
}
