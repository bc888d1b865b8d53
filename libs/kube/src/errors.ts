/** Any failure talking to the Kubernetes API or of a workload it runs. */
export class KubeError extends Error {
  override readonly name: string = "KubeError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A wait for a condition ran past its deadline; the message says what was last seen. */
export class KubeTimeoutError extends KubeError {
  override readonly name = "KubeTimeoutError";
}

/** The workload failed (pod Failed, Job Failed, container crash-looping, object deleted). */
export class KubeWorkloadError extends KubeError {
  override readonly name = "KubeWorkloadError";
}

/** Bad options for an object builder, naming the key. */
export class KubeSpecError extends KubeError {
  override readonly name = "KubeSpecError";
}
