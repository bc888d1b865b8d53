import { resolve } from "node:path";
import { StoreError } from "./errors.ts";
import { createLocalStore } from "./local-store.ts";
import type { ObjectStore } from "./object-store.ts";
import { createS3Store } from "./s3-store.ts";

/** Where a store lives, parsed from a URL. */
export type StoreLocation =
  | { kind: "local"; root: string }
  | { kind: "s3"; bucket: string; prefix: string };

/**
 * Parses `s3://bucket/optional/prefix`, `file:///abs/dir` or a plain path (relative paths are
 * resolved against the working directory).
 */
export function parseStoreUrl(url: string): StoreLocation {
  if (typeof url !== "string" || url.trim() === "") throw new StoreError("store URL is empty");
  if (url.startsWith("s3://")) {
    const rest = url.slice("s3://".length).replace(/\/+$/, "");
    const slash = rest.indexOf("/");
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? "" : rest.slice(slash + 1);
    if (bucket === "") throw new StoreError(`store URL ${url} has no bucket`);
    return { kind: "s3", bucket, prefix };
  }
  if (url.startsWith("file://")) return { kind: "local", root: resolve(new URL(url).pathname) };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new StoreError(
      `store URL ${url} has an unsupported scheme (use s3://, file:// or a path)`,
    );
  }
  return { kind: "local", root: resolve(url) };
}

/** S3 connection settings needed to open an `s3://` store URL. */
export interface S3Credentials {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region?: string;
}

/** Opens the store a URL names; `s3` settings are required for `s3://` URLs. */
/**
 * S3 settings from the environment: `ABL_S3_ENDPOINT`, `ABL_S3_ACCESS_KEY`, `ABL_S3_SECRET_KEY`
 * and `ABL_S3_REGION` (default us-east-1), or the `AWS_*` names; undefined unless the endpoint and
 * both keys are set.
 */
export function s3FromEnv(
  env: Readonly<Record<string, string | undefined>>,
): S3Credentials | undefined {
  const endpoint = env.ABL_S3_ENDPOINT ?? env.AWS_ENDPOINT_URL;
  const accessKey = env.ABL_S3_ACCESS_KEY ?? env.AWS_ACCESS_KEY_ID;
  const secretKey = env.ABL_S3_SECRET_KEY ?? env.AWS_SECRET_ACCESS_KEY;
  if (!endpoint || !accessKey || !secretKey) return undefined;
  return {
    endpoint,
    accessKey,
    secretKey,
    region: env.ABL_S3_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1",
  };
}

export function openStore(url: string, s3?: S3Credentials): ObjectStore {
  const loc = parseStoreUrl(url);
  if (loc.kind === "local") return createLocalStore({ root: loc.root });
  if (!s3) throw new StoreError(`store URL ${url} needs S3 endpoint and credentials`);
  return createS3Store({
    ...s3,
    bucket: loc.bucket,
    ...(loc.prefix ? { prefix: loc.prefix } : {}),
  });
}
