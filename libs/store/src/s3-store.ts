import { createHash, randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Client, CopyDestinationOptions, CopySourceOptions, S3Error } from "minio";
import { checkByteCount, checkSha256, chunksOf, collectBytes } from "./body.ts";
import { BucketNotFoundError, IntegrityError, ObjectNotFoundError, StoreError } from "./errors.ts";
import { RESERVED_SEGMENT_PREFIX, validateKey, validatePrefix } from "./keys.ts";
import type { GetOptions, ObjectInfo, ObjectStore, PutOptions } from "./object-store.ts";

/**
 * Multipart part size. An upload holds two parts in memory (one filling, one in flight), so
 * this bounds memory per upload at about 32 MiB whether or not the size is known. (minio-js's
 * own default for an unknown size is 528 MiB parts, `/work/shared/reference/infra.md` §5.1.)
 */
export const S3_PART_SIZE = 16 * 1024 * 1024;
/** S3 allows at most 10,000 parts, so the part size caps the object size (156.25 GiB). */
export const S3_MAX_OBJECT_BYTES = S3_PART_SIZE * 10_000;
/** Metadata field (sent as `x-amz-meta-sha256`) holding the object's sha256. */
const SHA_META = "sha256";
/** Folder (under the store prefix) where uploads of not-yet-known digest are staged. */
const STAGING = `${RESERVED_SEGMENT_PREFIX}-staging`;
/** S3's limit for a single-request CopyObject (5 GiB); bigger objects are copied in parts. */
export const S3_MAX_SINGLE_COPY_BYTES = 5 * 1024 * 1024 * 1024;
/** Part size of a multipart server-side copy (between S3's 5 MiB and 5 GiB part limits). */
export const S3_COPY_PART_BYTES = 512 * 1024 * 1024;
/** S3's smallest part (all but the last). */
const S3_MIN_PART_BYTES = 5 * 1024 * 1024;
/** Presigned URLs live at most 7 days (S3 SigV4 limit). */
export const MAX_PRESIGN_SECONDS = 7 * 24 * 60 * 60;

/** Options of {@link createS3Store}. */
export interface S3StoreOptions {
  /** Server URL, e.g. `http://127.0.0.1:9000` or `https://s3.eu-west-1.amazonaws.com`. */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  /** Key prefix inside the bucket (no leading or trailing `/`), default none. */
  prefix?: string;
  region?: string;
  /** Create the bucket if missing (default true); else operations throw `BucketNotFoundError`. */
  createBucket?: boolean;
  /**
   * Largest object copied from staging in one CopyObject request (default and maximum
   * {@link S3_MAX_SINGLE_COPY_BYTES}); larger ones use a multipart copy. Tests lower it.
   */
  maxSingleCopyBytes?: number;
  /** Part size of multipart copies (default {@link S3_COPY_PART_BYTES}, at least 5 MiB). */
  copyPartBytes?: number;
}

function s3Code(err: unknown): string | undefined {
  return err instanceof S3Error || (err && typeof err === "object" && "code" in err)
    ? String((err as { code?: unknown }).code)
    : undefined;
}

/**
 * An `ObjectStore` on an S3 bucket through the `minio` client (MinIO or any S3 server). Uploads
 * stream in {@link S3_PART_SIZE} parts while hashing; the sha256 is stored as object metadata.
 * When the caller does not pass the digest up front, the body is uploaded to a staging key and
 * then copied server-side to its key with the digest attached, so an object never appears
 * without its digest. Whole-object reads re-hash and compare. A process killed mid-put leaves
 * an incomplete multipart upload or a `.abl-staging/` object (never visible through the store);
 * an S3 lifecycle rule on that prefix and on incomplete uploads reclaims them.
 */
export function createS3Store(options: S3StoreOptions): ObjectStore {
  let url: URL;
  try {
    url = new URL(options.endpoint);
  } catch (err) {
    throw new StoreError(`S3 endpoint ${JSON.stringify(options.endpoint)} is not a URL`, {
      cause: err,
    });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new StoreError(`S3 endpoint ${options.endpoint} must be http: or https:`);
  }
  const bucket = options.bucket;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new StoreError(
      `S3 bucket name ${JSON.stringify(bucket)} is invalid (3-63 of [a-z0-9.-])`,
    );
  }
  const prefix = options.prefix ?? "";
  if (prefix !== "") validateKey(prefix);
  const useSSL = url.protocol === "https:";
  const client = new Client({
    endPoint: url.hostname,
    port: url.port ? Number(url.port) : useSSL ? 443 : 80,
    useSSL,
    accessKey: options.accessKey,
    secretKey: options.secretKey,
    partSize: S3_PART_SIZE,
    pathStyle: true,
    ...(options.region ? { region: options.region } : {}),
  });
  const maxSingleCopy = options.maxSingleCopyBytes ?? S3_MAX_SINGLE_COPY_BYTES;
  if (
    !Number.isSafeInteger(maxSingleCopy) ||
    maxSingleCopy < 0 ||
    maxSingleCopy > S3_MAX_SINGLE_COPY_BYTES
  ) {
    throw new StoreError(
      `maxSingleCopyBytes must be 0..${S3_MAX_SINGLE_COPY_BYTES}, got ${maxSingleCopy}`,
    );
  }
  const copyPart = options.copyPartBytes ?? S3_COPY_PART_BYTES;
  if (
    !Number.isSafeInteger(copyPart) ||
    copyPart < S3_MIN_PART_BYTES ||
    copyPart > S3_MAX_SINGLE_COPY_BYTES
  ) {
    throw new StoreError(
      `copyPartBytes must be ${S3_MIN_PART_BYTES}..${S3_MAX_SINGLE_COPY_BYTES}, got ${copyPart}`,
    );
  }
  const location = `s3://${bucket}${prefix ? `/${prefix}` : ""}`;
  const objectName = (key: string) => (prefix ? `${prefix}/${validateKey(key)}` : validateKey(key));

  let ready: Promise<void> | undefined;
  const ensureBucket = (): Promise<void> => {
    ready ??= (async () => {
      let exists: boolean;
      try {
        exists = await client.bucketExists(bucket);
      } catch (err) {
        throw new StoreError(`cannot reach S3 bucket ${bucket} at ${options.endpoint}`, {
          cause: err,
        });
      }
      if (exists) return;
      if (options.createBucket === false) {
        throw new BucketNotFoundError(
          `S3 bucket ${JSON.stringify(bucket)} does not exist at ${options.endpoint}`,
        );
      }
      try {
        await client.makeBucket(bucket, options.region ?? "");
      } catch (err) {
        const code = s3Code(err);
        if (code !== "BucketAlreadyOwnedByYou" && code !== "BucketAlreadyExists") {
          throw new StoreError(`creating S3 bucket ${bucket}`, { cause: err });
        }
      }
    })().catch((err) => {
      ready = undefined;
      throw err;
    });
    return ready;
  };

  const wrap = (what: string, key: string, err: unknown): Error => {
    if (err instanceof StoreError) return err;
    const code = s3Code(err);
    if (code === "NoSuchKey" || code === "NotFound")
      return new ObjectNotFoundError(key, { cause: err });
    if (code === "NoSuchBucket")
      return new BucketNotFoundError(`S3 bucket ${JSON.stringify(bucket)} does not exist`, {
        cause: err,
      });
    if (err instanceof DOMException && err.name === "AbortError") return err;
    return new StoreError(
      `${what} ${location}/${key} failed: ${(err as Error)?.message ?? String(err)}`,
      { cause: err },
    );
  };

  async function put(
    key: string,
    body: Uint8Array | AsyncIterable<Uint8Array>,
    opts: PutOptions = {},
  ): Promise<ObjectInfo> {
    const name = objectName(key);
    if (opts.size !== undefined) {
      checkByteCount("size", opts.size);
      if (opts.size > S3_MAX_OBJECT_BYTES) {
        throw new StoreError(
          `object ${key} of ${opts.size} bytes exceeds the S3 store limit of ${S3_MAX_OBJECT_BYTES} bytes`,
        );
      }
    }
    if (opts.sha256 !== undefined) checkSha256("sha256", opts.sha256);
    opts.signal?.throwIfAborted();
    await ensureBucket();
    const hash = createHash("sha256");
    let size = 0;
    async function* hashed(): AsyncGenerator<Uint8Array> {
      for await (const c of chunksOf(body, opts.signal)) {
        size += c.byteLength;
        if (size > S3_MAX_OBJECT_BYTES) {
          throw new StoreError(
            `object ${key} is over the S3 store limit of ${S3_MAX_OBJECT_BYTES} bytes`,
          );
        }
        if (opts.size !== undefined && size > opts.size) {
          throw new StoreError(
            `body of ${JSON.stringify(key)} is longer than the declared size ${opts.size}`,
          );
        }
        hash.update(c);
        yield c;
      }
      if (opts.size !== undefined && size !== opts.size) {
        throw new StoreError(
          `body of ${JSON.stringify(key)} is ${size} bytes, declared size ${opts.size}`,
        );
      }
    }
    const headers: Record<string, string> = {};
    if (opts.contentType) headers["Content-Type"] = opts.contentType;
    // Direct upload when the digest is known (checked before the upload is committed);
    // otherwise upload to a staging key, then copy server-side with the digest attached.
    const direct = opts.sha256 !== undefined;
    const target = direct ? name : `${prefix ? `${prefix}/` : ""}${STAGING}/${randomUUID()}`;
    if (opts.sha256 !== undefined) headers[`X-Amz-Meta-${SHA_META}`] = opts.sha256;
    let sha256 = "";
    try {
      await uploadStreaming(target, hashed(), headers, () => {
        sha256 = hash.digest("hex");
        if (opts.sha256 !== undefined && sha256 !== opts.sha256) {
          throw new IntegrityError(
            `body of ${JSON.stringify(key)} has sha256 ${sha256}, expected ${opts.sha256}`,
          );
        }
      });
    } catch (err) {
      if (!direct) await client.removeObject(bucket, target).catch(() => undefined);
      throw wrap("put", key, err);
    }
    if (direct) return { key, size, sha256, lastModified: new Date() };
    try {
      await copyWithDigest(target, name, size, sha256, opts.contentType);
    } catch (err) {
      throw wrap("put (copy from staging)", key, err);
    } finally {
      await client.removeObject(bucket, target).catch(() => undefined);
    }
    return { key, size, sha256, lastModified: new Date() };
  }

  /**
   * Uploads a stream in {@link S3_PART_SIZE} parts, one part in flight while the next fills, so
   * memory stays at about two parts for any size. A body that fits in one part is a single PUT.
   * `beforeCommit` runs after the last byte and before the object becomes visible; if it (or
   * the body) throws, the multipart upload is aborted and nothing is written. (minio-js's own
   * `putObject` stream path never settles when the body stream fails.)
   */
  async function uploadStreaming(
    target: string,
    source: AsyncIterable<Uint8Array>,
    headers: Record<string, string>,
    beforeCommit: () => void,
  ): Promise<void> {
    let buf = Buffer.allocUnsafe(S3_PART_SIZE);
    let fill = 0;
    let uploadId: string | undefined;
    let part = 0;
    let inflight: Promise<void> | undefined;
    const etags: Array<{ part: number; etag: string }> = [];
    const flush = async () => {
      uploadId ??= await client.initiateNewMultipartUpload(bucket, target, headers);
      const payload = buf.subarray(0, fill);
      const n = ++part;
      if (inflight) await inflight;
      inflight = client
        .uploadPart(
          {
            bucketName: bucket,
            objectName: target,
            uploadID: uploadId,
            partNumber: n,
            headers: {},
          },
          payload,
        )
        .then((r) => void etags.push({ part: n, etag: r.etag }));
      // Rejections surface at the next await of `inflight`; this only marks them handled.
      inflight.catch(() => undefined);
      buf = Buffer.allocUnsafe(S3_PART_SIZE);
      fill = 0;
    };
    try {
      for await (const chunk of source) {
        let off = 0;
        while (off < chunk.byteLength) {
          const n = Math.min(chunk.byteLength - off, S3_PART_SIZE - fill);
          buf.set(chunk.subarray(off, off + n), fill);
          fill += n;
          off += n;
          if (fill === S3_PART_SIZE) await flush();
        }
      }
      if (uploadId === undefined) {
        beforeCommit();
        await client.putObject(bucket, target, buf.subarray(0, fill), fill, headers);
        return;
      }
      if (fill > 0) await flush();
      await inflight;
      beforeCommit();
      etags.sort((a, b) => a.part - b.part);
      await client.completeMultipartUpload(bucket, target, uploadId, etags);
    } catch (err) {
      await inflight?.catch(() => undefined);
      if (uploadId !== undefined)
        await client.abortMultipartUpload(bucket, target, uploadId).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Server-side copy of a staged upload to its key with the digest attached. minio-js's
   * `composeObject` is not used: for sources it splits, it sends every split with the same part
   * number and one shared range header (8.0.7), which corrupts objects over ~524 MiB.
   */
  async function copyWithDigest(
    source: string,
    dest: string,
    size: number,
    sha256: string,
    contentType: string | undefined,
  ): Promise<void> {
    if (size <= maxSingleCopy) {
      await client.copyObject(
        new CopySourceOptions({ Bucket: bucket, Object: source }),
        new CopyDestinationOptions({
          Bucket: bucket,
          Object: dest,
          UserMetadata: { [SHA_META]: sha256 },
          MetadataDirective: "REPLACE",
          ...(contentType ? { Headers: { "Content-Type": contentType } } : {}),
        }),
      );
      return;
    }
    const headers: Record<string, string> = { [`X-Amz-Meta-${SHA_META}`]: sha256 };
    if (contentType) headers["Content-Type"] = contentType;
    const uploadId = await client.initiateNewMultipartUpload(bucket, dest, headers);
    try {
      const copySource = `/${bucket}/${source.split("/").map(encodeURIComponent).join("/")}`;
      const etags: Array<{ part: number; etag: string }> = [];
      for (let part = 1, start = 0; start < size; part++, start += copyPart) {
        const end = Math.min(size, start + copyPart) - 1;
        const res = await client.uploadPart({
          bucketName: bucket,
          objectName: dest,
          uploadID: uploadId,
          partNumber: part,
          headers: {
            "x-amz-copy-source": copySource,
            "x-amz-copy-source-range": `bytes=${start}-${end}`,
          },
        });
        etags.push({ part, etag: res.etag });
      }
      await client.completeMultipartUpload(bucket, dest, uploadId, etags);
    } catch (err) {
      await client.abortMultipartUpload(bucket, dest, uploadId).catch(() => undefined);
      throw err;
    }
  }

  async function* get(key: string, opts: GetOptions = {}): AsyncGenerator<Uint8Array> {
    const name = objectName(key);
    opts.signal?.throwIfAborted();
    await ensureBucket();
    let res: IncomingMessage;
    try {
      if (opts.range) {
        const offset = checkByteCount("range.offset", opts.range.offset);
        const length = checkByteCount("range.length", opts.range.length);
        if (length === 0) return;
        const info = await statKey(key);
        if (!info) throw new ObjectNotFoundError(key);
        if (offset >= info.size) return;
        res = (await client.getPartialObject(
          bucket,
          name,
          offset,
          Math.min(length, info.size - offset),
        )) as IncomingMessage;
      } else {
        res = (await client.getObject(bucket, name)) as IncomingMessage;
      }
    } catch (err) {
      throw wrap("get", key, err);
    }
    const onAbort = () => res.destroy(opts.signal?.reason);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (opts.range) {
        for await (const c of res) yield new Uint8Array(c as Buffer);
        return;
      }
      const recorded = res.headers[`x-amz-meta-${SHA_META}`];
      const expected = typeof recorded === "string" ? recorded : "";
      const hash = createHash("sha256");
      let size = 0;
      for await (const chunk of res) {
        const c = chunk as Buffer;
        hash.update(c);
        size += c.byteLength;
        yield new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
      }
      const sha256 = hash.digest("hex");
      const declared = Number(res.headers["content-length"]);
      if (Number.isFinite(declared) && declared !== size) {
        throw new IntegrityError(
          `object ${location}/${key}: read ${size} bytes, server declared ${declared}`,
        );
      }
      if (expected !== "" && sha256 !== expected) {
        throw new IntegrityError(
          `object ${location}/${key} is corrupt: read ${size} bytes with sha256 ${sha256}, recorded sha256 ${expected}`,
        );
      }
    } catch (err) {
      if (err instanceof StoreError || opts.signal?.aborted) throw err;
      throw wrap("get", key, err);
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      res.destroy();
    }
  }

  async function statKey(key: string): Promise<ObjectInfo | undefined> {
    const name = objectName(key);
    await ensureBucket();
    try {
      const st = await client.statObject(bucket, name);
      const sha = st.metaData?.[SHA_META];
      return {
        key,
        size: st.size,
        sha256: typeof sha === "string" ? sha : "",
        lastModified: st.lastModified,
      };
    } catch (err) {
      const e = wrap("stat", key, err);
      if (e instanceof ObjectNotFoundError) return undefined;
      throw e;
    }
  }

  async function* list(
    listPrefix: string,
    opts: { signal?: AbortSignal } = {},
  ): AsyncGenerator<ObjectInfo> {
    validatePrefix(listPrefix);
    await ensureBucket();
    const full = prefix ? `${prefix}/${listPrefix}` : listPrefix;
    const names: string[] = [];
    try {
      for await (const item of client.listObjectsV2(bucket, full, true)) {
        opts.signal?.throwIfAborted();
        const n = (item as { name?: string }).name;
        if (!n) continue;
        const rel = prefix ? n.slice(prefix.length + 1) : n;
        if (rel.startsWith(RESERVED_SEGMENT_PREFIX)) continue;
        names.push(rel);
      }
    } catch (err) {
      throw wrap("list", listPrefix, err);
    }
    names.sort();
    for (const k of names) {
      opts.signal?.throwIfAborted();
      const info = await statKey(k);
      if (info) yield info;
    }
  }

  const checkExpiry = (s: number) => {
    if (!Number.isInteger(s) || s < 1 || s > MAX_PRESIGN_SECONDS) {
      throw new StoreError(`presign expiry must be 1..${MAX_PRESIGN_SECONDS} seconds, got ${s}`);
    }
    return s;
  };

  return {
    kind: "s3",
    location,
    put,
    get,
    getBytes: (key, opts) => collectBytes(get(key, opts)),
    stat: statKey,
    list,
    async delete(key) {
      const name = objectName(key);
      await ensureBucket();
      try {
        await client.removeObject(bucket, name);
      } catch (err) {
        const e = wrap("delete", key, err);
        if (!(e instanceof ObjectNotFoundError)) throw e;
      }
    },
    async presignGet(key, expirySeconds) {
      const name = objectName(key);
      await ensureBucket();
      return client.presignedGetObject(bucket, name, checkExpiry(expirySeconds));
    },
    async presignPut(key, expirySeconds) {
      const name = objectName(key);
      await ensureBucket();
      return client.presignedPutObject(bucket, name, checkExpiry(expirySeconds));
    },
  };
}
