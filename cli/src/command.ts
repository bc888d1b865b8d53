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

/** Runs a `node:util` parseArgs call, turning its errors (unknown option, missing value) into `UsageError`. */
export function parseCli<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (
      err instanceof TypeError &&
      "code" in err &&
      String(err.code).startsWith("ERR_PARSE_ARGS")
    ) {
      throw new UsageError(err.message);
    }
    throw err;
  }
}
