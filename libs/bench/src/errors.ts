/** Errors raised by the bench library. Each names the problem and the numbers involved. */

/** A task folder or dataset that cannot be loaded (bad task.toml, missing files, bad git ref). */
export class TaskLoadError extends Error {
  override readonly name = "TaskLoadError";
}

/** The sandbox or container failed (start, exec, upload, download): an infra error, retried. */
export class EnvironmentError extends Error {
  override readonly name = "EnvironmentError";
}

/** The model endpoint failed after retries, or answered with something unusable: retried. */
export class LlmError extends Error {
  override readonly name: string = "LlmError";
  /** HTTP status of the last attempt, when there was a response. */
  readonly status: number | undefined;
  constructor(message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = options?.status;
  }
}

/** The prompt no longer fits the model's context window (detected from the server's error text). */
export class ContextLengthError extends LlmError {
  override readonly name = "ContextLengthError";
}
