/** Any malformed or out-of-limit safetensors file, header or shard index. */
export class SafetensorsError extends Error {
  override readonly name = "SafetensorsError";
  /** The file or object the problem was found in, when known. */
  readonly source: string | undefined;
  constructor(message: string, options?: { source?: string; cause?: unknown }) {
    super(options?.source ? `${options.source}: ${message}` : message, { cause: options?.cause });
    this.source = options?.source;
  }
}

/** A dtype this library does not know, or a codec asked of a dtype it cannot decode. */
export class DTypeError extends Error {
  override readonly name = "DTypeError";
}
