/**
 * Terminal progress for long commands: one line per active task with a bar, counts, rate and
 * ETA, redrawn in place on a TTY (at most every 100 ms); on a pipe, one plain line per finished
 * task and at most one progress line per task every 5 s, so logs stay readable.
 */

/** One line of the display. */
export interface ProgressLine {
  update(done: number, total: number, message?: string): void;
  finish(message?: string): void;
}

export interface ProgressDisplay {
  line(label: string, unit: string): ProgressLine;
  /** Prints a line above the bars. */
  log(text: string): void;
  close(): void;
}

const BAR_WIDTH = 24;
const REDRAW_MS = 100;
const PIPE_INTERVAL_MS = 5_000;

function human(n: number, unit: string): string {
  if (unit !== "bytes") return `${Math.round(n)}`;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  if (s < 60) return `${Math.round(s)}s`;
  const m = Math.floor(s / 60);
  return m < 60
    ? `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s`
    : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

interface State {
  label: string;
  unit: string;
  done: number;
  total: number;
  message: string;
  started: number;
  finished: boolean;
  lastPipe: number;
}

function render(s: State, width: number): string {
  const frac = s.total > 0 ? Math.min(1, s.done / s.total) : 0;
  const filled = Math.round(frac * BAR_WIDTH);
  const elapsed = (Date.now() - s.started) / 1000;
  const rate = elapsed > 0 ? s.done / elapsed : 0;
  const eta = rate > 0 ? (s.total - s.done) / rate : Number.NaN;
  const rateText =
    s.unit === "bytes" ? `${human(rate, "bytes")}/s` : `${rate.toFixed(1)} ${s.unit}/s`;
  const text = s.finished
    ? `✔ ${s.label} ${human(s.done, s.unit)}${s.unit === "bytes" ? "" : ` ${s.unit}`} in ${duration(elapsed)} ${s.message}`
    : `${s.label.padEnd(22)} [${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ${human(s.done, s.unit)}/${human(s.total, s.unit)}${s.unit === "bytes" ? "" : ` ${s.unit}`} ${rateText} ETA ${duration(eta)} ${s.message}`;
  return text.length > width ? `${text.slice(0, width - 1)}…` : text;
}

/** Creates a display on `stream` (default stderr). */
export function createProgress(stream: NodeJS.WriteStream = process.stderr): ProgressDisplay {
  const tty = stream.isTTY === true;
  const active: State[] = [];
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;
  const width = () => (tty ? (stream.columns ?? 100) : 200);

  const redraw = () => {
    timer = undefined;
    if (!tty) return;
    let out = drawn > 0 ? `\x1b[${drawn}A` : "";
    for (const s of active) out += `\x1b[2K${render(s, width())}\n`;
    stream.write(out);
    drawn = active.length;
  };
  const schedule = () => {
    if (tty && !timer) timer = setTimeout(redraw, REDRAW_MS);
  };
  const printAbove = (text: string) => {
    if (tty) {
      let out = drawn > 0 ? `\x1b[${drawn}A` : "";
      out += `\x1b[2K${text}\n`;
      for (const s of active) out += `\x1b[2K${render(s, width())}\n`;
      // Clear lines left over from bars that were removed.
      stream.write(out);
      drawn = active.length;
    } else stream.write(`${text}\n`);
  };

  return {
    line(label, unit) {
      const s: State = {
        label,
        unit,
        done: 0,
        total: 0,
        message: "",
        started: Date.now(),
        finished: false,
        lastPipe: 0,
      };
      active.push(s);
      schedule();
      return {
        update(done, total, message) {
          s.done = done;
          s.total = total;
          if (message !== undefined) s.message = message;
          if (tty) schedule();
          else if (Date.now() - s.lastPipe >= PIPE_INTERVAL_MS) {
            s.lastPipe = Date.now();
            stream.write(`${render(s, width())}\n`);
          }
        },
        finish(message) {
          s.finished = true;
          if (message !== undefined) s.message = message;
          active.splice(active.indexOf(s), 1);
          if (tty && drawn > active.length) {
            // Move up over the old bars, print the finished line, then redraw what remains.
            let out = `\x1b[${drawn}A\x1b[2K${render(s, width())}\n`;
            for (const a of active) out += `\x1b[2K${render(a, width())}\n`;
            out += "\x1b[2K\n".repeat(Math.max(0, drawn - active.length - 1));
            if (drawn - active.length - 1 > 0) out += `\x1b[${drawn - active.length - 1}A`;
            stream.write(out);
            drawn = active.length;
          } else printAbove(render(s, width()));
        },
      };
    },
    log: printAbove,
    close() {
      if (timer) clearTimeout(timer);
      redraw();
    },
  };
}
