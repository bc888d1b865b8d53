/** Base class of every error thrown by `@abl/bus`; `cause` carries the underlying error. */
export class BusError extends Error {
  override readonly name: string = "BusError";
}

/** A job kind, job id, subject, bucket or key that the bus does not accept. */
export class InvalidNameError extends BusError {
  override readonly name = "InvalidNameError";
}

/** A message larger than the server (or in-memory bus) accepts. */
export class PayloadTooLargeError extends BusError {
  override readonly name = "PayloadTooLargeError";
  constructor(
    readonly what: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(
      `${what} is ${bytes} bytes, over the bus limit of ${limit} bytes; store big data in the object store and send its key`,
    );
  }
}

/** `Kv.update` with a revision that is no longer the key's latest: another writer got there first. */
export class KvRevisionConflictError extends BusError {
  override readonly name = "KvRevisionConflictError";
  constructor(
    readonly bucket: string,
    readonly key: string,
    readonly expectedRevision: number,
    options?: ErrorOptions,
  ) {
    super(
      `kv ${bucket}/${key}: revision ${expectedRevision} is stale (another writer updated the key)`,
      options,
    );
  }
}

/** `Kv.create` on a key that already has a value. */
export class KvKeyExistsError extends BusError {
  override readonly name = "KvKeyExistsError";
  constructor(
    readonly bucket: string,
    readonly key: string,
    options?: ErrorOptions,
  ) {
    super(`kv ${bucket}/${key} already exists`, options);
  }
}

/** `bus.kv(name, { create: false })` for a bucket that does not exist. */
export class KvBucketNotFoundError extends BusError {
  override readonly name = "KvBucketNotFoundError";
  constructor(
    readonly bucket: string,
    options?: ErrorOptions,
  ) {
    super(`kv bucket ${JSON.stringify(bucket)} does not exist`, options);
  }
}

/** The bus was closed; no more publishing or consuming. */
export class BusClosedError extends BusError {
  override readonly name = "BusClosedError";
}

/**
 * Thrown by a job handler to fail the job for good (no more retries): the job goes straight to
 * the dead-letter records. Use it for failures that a retry cannot fix (bad input, model error).
 */
export class TerminalJobError extends BusError {
  override readonly name = "TerminalJobError";
}
