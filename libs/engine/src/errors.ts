/** A model folder the engine cannot run: unsupported architecture, bad config, weights that do not match it. */
export class ModelLoadError extends Error {
  override readonly name = "ModelLoadError";
}

/** A request the engine cannot serve: prompt longer than the context, bad sampling options, bad shapes. */
export class EngineRequestError extends Error {
  override readonly name = "EngineRequestError";
}
