/** Base class of every error thrown by `@abl/store`; `cause` carries the underlying error. */
export class StoreError extends Error {
  override readonly name: string = "StoreError";
}

/** A key that is malformed or would escape the store's root (`..`, leading `/`, bad characters). */
export class InvalidKeyError extends StoreError {
  override readonly name = "InvalidKeyError";
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(
      `invalid object key ${JSON.stringify(key.length > 200 ? `${key.slice(0, 200)}…` : key)}: ${reason}`,
    );
  }
}

/** The object (or artifact) does not exist. */
export class ObjectNotFoundError extends StoreError {
  override readonly name = "ObjectNotFoundError";
  constructor(
    readonly key: string,
    options?: ErrorOptions,
  ) {
    super(`object ${JSON.stringify(key)} not found`, options);
  }
}

/** Stored bytes do not match the recorded sha256 or size: the object is corrupt or was changed. */
export class IntegrityError extends StoreError {
  override readonly name = "IntegrityError";
}

/** The S3 bucket does not exist and the store was told not to create it. */
export class BucketNotFoundError extends StoreError {
  override readonly name = "BucketNotFoundError";
}
