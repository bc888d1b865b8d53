/** One `abl` sub-command. `run` gets the arguments after the command's name. */
export interface Command {
  /** Words that select it, e.g. `["bench", "run"]`. */
  readonly name: readonly string[];
  /** One line for `abl --help`. */
  readonly summary: string;
  /** Full usage text for `abl <name> --help`. */
  readonly usage: string;
  run(argv: string[], signal: AbortSignal): Promise<number>;
}

/** A usage error: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
