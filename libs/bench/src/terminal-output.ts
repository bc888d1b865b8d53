/**
 * Terminal observations (reference/terminal-bench.md §4.5 step 4): what is new since the last
 * capture (labelled `New Terminal Output:`), else the visible screen (`Current Terminal Screen:`),
 * limited to {@link MAX_OUTPUT_BYTES} by keeping the head and tail halves.
 */

/** Upstream's observation limit: 10,000 bytes, head and tail halves kept. */
export const MAX_OUTPUT_BYTES = 10_000;

/** Keeps the first and last halves of `text` when it exceeds `limit` UTF-8 bytes. */
export function limitOutput(text: string, limit = MAX_OUTPUT_BYTES): string {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= limit) return text;
  const half = Math.floor(limit / 2);
  // Decoding a cut multi-byte sequence yields U+FFFD, which is acceptable in an observation.
  const head = bytes.subarray(0, half).toString("utf8");
  const tail = bytes.subarray(bytes.length - half).toString("utf8");
  const omitted = bytes.length - 2 * half;
  return `${head}\n[... output limited to ${limit} bytes; ${omitted} interior bytes omitted ...]\n${tail}`;
}

/**
 * The observation after a batch: if the previous full-history capture is a prefix-bearing
 * substring of the new one, what follows it; otherwise (or when nothing is new) the screen.
 */
export function incrementalOutput(
  previous: string | null,
  current: string,
  screen: string,
): string {
  if (previous !== null) {
    const prev = previous.trimEnd();
    // The scrollback normally grows at the end, so the old capture is found at its first place.
    const idx = prev === "" ? 0 : current.indexOf(prev);
    const end = idx + prev.length;
    if (idx >= 0 && current.slice(end).trim() !== "") {
      // A complete last line is not repeated; a continued one (the prompt, now followed by the
      // command typed on it) is shown whole.
      const from =
        prev === "" ? 0 : current[end] === "\n" ? end + 1 : current.lastIndexOf("\n", end - 1) + 1;
      const added = current.slice(from);
      if (added.trim() !== "") return `New Terminal Output:\n${limitOutput(added.trimEnd())}`;
    }
  }
  return `Current Terminal Screen:\n${limitOutput(screen.trimEnd())}`;
}
