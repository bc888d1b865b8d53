/**
 * Named errors of the refusal library. Each states the numbers involved and keeps the original
 * failure in `cause`, so callers can map them to a status without parsing messages.
 */

/** A contrast-set spec or prompt source is malformed, empty or unreadable. */
export class ContrastSetError extends Error {
  override readonly name = "ContrastSetError";
}

/** Activations do not fit together (shapes, prompt counts, model digest) or a layer is out of range. */
export class ActivationsError extends Error {
  override readonly name = "ActivationsError";
}

/** Direction math cannot proceed (zero-norm difference, too few prompts for a metric). */
export class DirectionsError extends Error {
  override readonly name = "DirectionsError";
}

/** An OpenAI-compatible endpoint (model or judge) stayed unreachable after every retry. */
export class EndpointUnavailableError extends Error {
  override readonly name = "EndpointUnavailableError";
}

/** An endpoint answered, but with something the evaluation cannot use. */
export class EndpointResponseError extends Error {
  override readonly name = "EndpointResponseError";
}

/** The local model cache cannot hold the requested model (no manifest, wrong digest, too big). */
export class ModelCacheError extends Error {
  override readonly name = "ModelCacheError";
}
