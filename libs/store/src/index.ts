export {
  type ArtifactFile,
  type ArtifactInput,
  type ArtifactManifest,
  type ArtifactWriter,
  artifactExists,
  createArtifactWriter,
  listArtifacts,
  MANIFEST_NAME,
  MAX_MANIFEST_BYTES,
  publishArtifact,
  readArtifact,
  readArtifactFile,
} from "./artifact.ts";
export { collectBytes } from "./body.ts";
export {
  BucketNotFoundError,
  IntegrityError,
  InvalidKeyError,
  ObjectNotFoundError,
  StoreError,
} from "./errors.ts";
export { joinKey, MAX_KEY_BYTES, validateKey, validatePrefix } from "./keys.ts";
export { createLocalStore, type LocalStoreOptions } from "./local-store.ts";
export type { GetOptions, ObjectInfo, ObjectStore, PutOptions } from "./object-store.ts";
export { processAlive } from "./process-alive.ts";
export {
  createS3Store,
  MAX_PRESIGN_SECONDS,
  S3_MAX_OBJECT_BYTES,
  S3_PART_SIZE,
  type S3StoreOptions,
} from "./s3-store.ts";
export { canonicalJson, sha256Hex, stepKey } from "./step-key.ts";
export {
  openStore,
  parseStoreUrl,
  type S3Credentials,
  type StoreLocation,
  s3FromEnv,
} from "./store-url.ts";
