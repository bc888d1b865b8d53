/** A checkpoint folder that is missing files, has a malformed config, or disagrees with itself. */
export class CheckpointError extends Error {
  override readonly name: string = "CheckpointError";
}

/**
 * No architecture adapter matches the checkpoint. `candidates` lists tensor-name patterns that
 * look like writers into the residual stream, so the user can pass them explicitly.
 */
export class UnknownArchitectureError extends CheckpointError {
  override readonly name = "UnknownArchitectureError";
  constructor(
    readonly modelType: string,
    readonly candidates: readonly string[],
  ) {
    super(
      `no architecture adapter for model_type "${modelType}"; tensors with a hidden-size axis that may write into the residual stream:\n  ${
        candidates.length > 0 ? candidates.join("\n  ") : "(none found)"
      }\npass the writer patterns explicitly`,
    );
  }
}
