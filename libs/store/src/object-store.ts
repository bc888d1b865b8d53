/** Metadata of one stored object. */
export interface ObjectInfo {
  key: string;
  /** Size in bytes. */
  size: number;
  /**
   * Lower-case hex sha256 of the whole object, computed while it was written. Empty only for an
   * S3 object written outside the store (e.g. through a presigned PUT), which has no recorded
   * digest and whose reads therefore cannot be verified.
   */
  sha256: string;
  lastModified?: Date;
}

/** Options of {@link ObjectStore.put}. */
export interface PutOptions {
  /**
   * Exact size in bytes when known. The S3 store uses it to pick part sizes; a body of another
   * length is rejected. Always pass it for big objects.
   */
  size?: number;
  /**
   * Expected sha256 (hex) when the caller already knows it: the write fails with
   * `IntegrityError` if the body hashes differently, and the S3 store can skip a server-side copy.
   */
  sha256?: string;
  contentType?: string;
  signal?: AbortSignal;
}

/** Options of {@link ObjectStore.get}. */
export interface GetOptions {
  signal?: AbortSignal;
  /**
   * Read only `length` bytes from `offset` (clamped to the object's end). Range reads are not
   * checked against the sha256; whole-object reads are.
   */
  range?: { offset: number; length: number };
}

/**
 * A flat key → bytes store (a local folder or an S3 bucket). Keys are `/`-separated relative
 * paths (see `validateKey`). Every put records the body's sha256; every whole-object get re-hashes
 * while streaming and throws `IntegrityError` at the end on a mismatch, so corruption is never
 * silent. A put is atomic: readers see the old object or the new one, never a partial one.
 */
export interface ObjectStore {
  readonly kind: "local" | "s3";
  /** Human-readable location (`/data/abl` or `s3://bucket/prefix`), for logs. */
  readonly location: string;
  /** Stores `body` under `key`, streaming it (memory stays bounded for any size). */
  put(
    key: string,
    body: Uint8Array | AsyncIterable<Uint8Array>,
    opts?: PutOptions,
  ): Promise<ObjectInfo>;
  /**
   * Streams the object. Throws `ObjectNotFoundError` if it is absent and `IntegrityError` (after
   * the last chunk) if a whole-object read does not match the recorded sha256. Each chunk is
   * the caller's to keep: stores never reuse a chunk's memory for a later one.
   */
  get(key: string, opts?: GetOptions): AsyncIterable<Uint8Array>;
  /** Reads the whole object (or range) into memory; for small objects only. */
  getBytes(key: string, opts?: GetOptions): Promise<Uint8Array>;
  /** Metadata, or `undefined` if the object does not exist. */
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with `prefix` (a plain string prefix; `""` lists all). */
  list(prefix: string, opts?: { signal?: AbortSignal }): AsyncIterable<ObjectInfo>;
  /** Removes the object; deleting an absent key is not an error. */
  delete(key: string): Promise<void>;
  /** A URL anyone can GET for `expirySeconds` (S3 only). */
  presignGet?(key: string, expirySeconds: number): Promise<string>;
  /** A URL anyone can PUT to for `expirySeconds` (S3 only; such uploads carry no sha256). */
  presignPut?(key: string, expirySeconds: number): Promise<string>;
}
