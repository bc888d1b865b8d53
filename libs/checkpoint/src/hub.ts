/**
 * Hugging Face Hub downloads into a cache laid out like huggingface_hub's:
 *
 *   <cache>/models--<org>--<name>/blobs/<etag>                 file contents (etag = LFS sha256 or git blob sha1)
 *   <cache>/models--<org>--<name>/blobs/<etag>.incomplete      a download in progress (resumed with Range)
 *   <cache>/models--<org>--<name>/snapshots/<commit>/<path>    relative symlink to ../../blobs/<etag>
 *   <cache>/models--<org>--<name>/refs/<revision>              the commit a branch or tag pointed to
 *
 * so a cache filled by either tool serves the other. The file list comes from the tree API
 * (`/api/models/{id}/tree/{commit}`), whose `lfs.oid` is the sha256 every LFS download is checked
 * against; other files are checked against their git blob sha1. Redirects are followed by hand so
 * the token is never sent to another origin (the Hub redirects LFS files to a CDN).
 */
import { createHash, type Hash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import {
  lstat,
  mkdir,
  open,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, relative, sep } from "node:path";

/** Default Hub endpoint (HF_ENDPOINT overrides it). */
export const HUB_DEFAULT_ENDPOINT = "https://huggingface.co";
/** Largest JSON answer read from the Hub API (a tree page of 1000 files is ~300 KiB). */
export const HUB_MAX_API_RESPONSE_BYTES = 16 * 1024 * 1024;
/** Most files accepted in one model repository (real checkpoints have tens). */
export const HUB_MAX_FILES = 20_000;
/** Most tree API pages followed (1000 files a page). */
export const HUB_MAX_TREE_PAGES = 50;
/** Most redirects followed for one request (the Hub uses one or two). */
export const HUB_MAX_REDIRECTS = 5;
/** Attempts per request before giving up on retryable failures (network, 5xx, 429). */
export const HUB_DEFAULT_ATTEMPTS = 5;
/** First retry delay; doubled on each attempt, capped at {@link HUB_MAX_RETRY_DELAY_MS}. */
export const HUB_DEFAULT_RETRY_DELAY_MS = 500;
/** Longest wait between attempts. */
export const HUB_MAX_RETRY_DELAY_MS = 30_000;

/** Any Hub failure; `status` is the HTTP status when there was one. */
export class HubError extends Error {
  override readonly name: string = "HubError";
  constructor(
    message: string,
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** 401/403: the repository needs a token, or the token lacks access. */
export class HubAuthError extends HubError {
  override readonly name = "HubAuthError";
}

/** 404: no such repository, revision or file. */
export class HubNotFoundError extends HubError {
  override readonly name = "HubNotFoundError";
}

/** A downloaded file whose size or hash differs from what the Hub announced. */
export class HubIntegrityError extends HubError {
  override readonly name = "HubIntegrityError";
}

/** A parsed `org/name[@revision]`. */
export interface HubModelSpec {
  readonly repoId: string;
  readonly revision: string;
}

const REPO_PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
const REVISION = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$/;

/** Parses `org/name[@revision]` (revision defaults to `main`); undefined when `spec` is not one. */
export function parseHubSpec(spec: string): HubModelSpec | undefined {
  const at = spec.indexOf("@");
  const repoId = at < 0 ? spec : spec.slice(0, at);
  const revision = at < 0 ? "main" : spec.slice(at + 1);
  const parts = repoId.split("/");
  if (parts.length !== 2 || !parts.every((p) => REPO_PART.test(p) && !p.includes("..")))
    return undefined;
  if (!REVISION.test(revision) || revision.includes("..")) return undefined;
  return { repoId, revision };
}

/** One file of a snapshot as the tree API lists it. */
export interface HubFile {
  readonly path: string;
  readonly size: number;
  /** git blob sha1 of the file (of the LFS pointer, for LFS files). */
  readonly oid: string;
  /** sha256 of the contents, for LFS files. */
  readonly lfsSha256?: string;
}

/** Progress of a download. */
export type HubEvent =
  | {
      readonly type: "resolved";
      readonly repoId: string;
      readonly commit: string;
      readonly files: number;
    }
  | {
      readonly type: "file-start";
      readonly path: string;
      readonly size: number;
      readonly resumeFrom: number;
    }
  | { readonly type: "file-done"; readonly path: string; readonly cached: boolean }
  | {
      readonly type: "retry";
      readonly url: string;
      readonly attempt: number;
      readonly delayMs: number;
      readonly reason: string;
    }
  | {
      readonly type: "offline";
      readonly repoId: string;
      readonly commit: string;
      readonly reason: string;
    };

/** Options of {@link downloadHubModel}. */
export interface HubDownloadOptions {
  /** Cache root (huggingface_hub's `HF_HUB_CACHE`). */
  readonly cacheDir: string;
  readonly endpoint?: string;
  readonly token?: string;
  readonly signal?: AbortSignal;
  /** Which repository files to fetch (default: {@link isCheckpointFile}). */
  readonly include?: (path: string) => boolean;
  readonly fetch?: typeof fetch;
  readonly attempts?: number;
  readonly retryDelayMs?: number;
  readonly onEvent?: (e: HubEvent) => void;
}

/** The files a checkpoint folder needs: weights, index, configs, tokenizer files, chat template. */
export function isCheckpointFile(path: string): boolean {
  if (path.includes("/")) return false;
  return (
    path.endsWith(".safetensors") ||
    path === "model.safetensors.index.json" ||
    path === "config.json" ||
    path === "generation_config.json" ||
    path === "tokenizer.json" ||
    path === "tokenizer_config.json" ||
    path === "special_tokens_map.json" ||
    path === "chat_template.jinja" ||
    path === "chat_template.json"
  );
}

/**
 * Hub options from an environment, read the way huggingface_hub reads them: HF_TOKEN (or the older
 * HUGGING_FACE_HUB_TOKEN), HF_ENDPOINT, and the cache HF_HUB_CACHE, else $HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. Only `main.ts` files should
 * pass `process.env`.
 */
export function hubOptionsFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  home: string = homedir(),
): { cacheDir: string; endpoint?: string; token?: string } {
  const hfHome = env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(home, ".cache"), "huggingface");
  const out: { cacheDir: string; endpoint?: string; token?: string } = {
    cacheDir: env.HF_HUB_CACHE ?? join(hfHome, "hub"),
  };
  if (env.HF_ENDPOINT) out.endpoint = env.HF_ENDPOINT;
  const token = env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (token) out.token = token;
  return out;
}

/** The cache folder of a model repository, as huggingface_hub names it. */
export function hubRepoCacheDir(cacheDir: string, repoId: string): string {
  return join(cacheDir, `models--${repoId.replace("/", "--")}`);
}

function safeRelativePath(p: string): boolean {
  if (
    p.length === 0 ||
    p.length > 1024 ||
    p.startsWith("/") ||
    p.includes("\\") ||
    p.includes("\0")
  )
    return false;
  return p.split("/").every((s) => s !== "" && s !== "." && s !== "..");
}

function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

class RetryableError extends Error {}

interface Ctx {
  readonly endpoint: string;
  readonly token: string | undefined;
  readonly fetch: typeof fetch;
  readonly signal: AbortSignal | undefined;
  readonly attempts: number;
  readonly retryDelayMs: number;
  readonly onEvent: ((e: HubEvent) => void) | undefined;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Runs `fn` with exponential backoff on RetryableError and network failures. */
async function withRetries<T>(ctx: Ctx, url: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (ctx.signal?.aborted) throw ctx.signal.reason;
      const retryable =
        err instanceof RetryableError || (err instanceof TypeError && !(err instanceof HubError));
      if (!retryable || attempt >= ctx.attempts) {
        if (err instanceof RetryableError || err instanceof TypeError) {
          throw new HubError(
            `${url}: gave up after ${attempt} attempts: ${err.message}`,
            undefined,
            { cause: err },
          );
        }
        throw err;
      }
      const delayMs = Math.min(ctx.retryDelayMs * 2 ** (attempt - 1), HUB_MAX_RETRY_DELAY_MS);
      ctx.onEvent?.({ type: "retry", url, attempt, delayMs, reason: (err as Error).message });
      await sleep(delayMs, ctx.signal);
    }
  }
}

/**
 * GET `url`, following redirects by hand: the token goes only to the endpoint's origin. Throws
 * the typed errors for 401/403/404 and RetryableError for 408/429/5xx.
 */
async function get(
  ctx: Ctx,
  url: string,
  what: string,
  headers: Record<string, string> = {},
  seen?: { linkedEtag?: string },
): Promise<Response> {
  const origin = new URL(ctx.endpoint).origin;
  let current = url;
  for (let hop = 0; hop <= HUB_MAX_REDIRECTS; hop++) {
    const h: Record<string, string> = { ...headers };
    if (ctx.token && new URL(current).origin === origin) h.authorization = `Bearer ${ctx.token}`;
    const init: RequestInit = { headers: h, redirect: "manual" };
    if (ctx.signal) init.signal = ctx.signal;
    const res = await ctx.fetch(current, init);
    // The Hub names an LFS file's sha256 on the redirect to its storage (quoted, sometimes W/).
    const linked = res.headers.get("x-linked-etag");
    if (seen && linked) seen.linkedEtag = linked.replace(/^W\//, "").replace(/"/g, "");
    if (res.status >= 300 && res.status < 400 && res.headers.has("location")) {
      await res.body?.cancel();
      current = new URL(res.headers.get("location")!, current).toString();
      continue;
    }
    if (res.ok) return res;
    await res.body?.cancel();
    if (res.status === 401 || res.status === 403) {
      throw new HubAuthError(
        `${what}: access denied (${res.status})${ctx.token ? ": the token has no access" : ": set HF_TOKEN for gated or private repositories"}`,
        res.status,
      );
    }
    if (res.status === 404) throw new HubNotFoundError(`${what}: not found (404)`, 404);
    if (isRetryableStatus(res.status)) throw new RetryableError(`${what}: HTTP ${res.status}`);
    throw new HubError(`${what}: HTTP ${res.status}`, res.status);
  }
  throw new HubError(`${what}: more than ${HUB_MAX_REDIRECTS} redirects`);
}

async function getJson(
  ctx: Ctx,
  url: string,
  what: string,
): Promise<{ body: unknown; res: Response }> {
  return withRetries(ctx, url, async () => {
    const res = await get(ctx, url, what, { accept: "application/json" });
    const declared = Number(res.headers.get("content-length") ?? "0");
    if (declared > HUB_MAX_API_RESPONSE_BYTES) {
      await res.body?.cancel();
      throw new HubError(
        `${what}: answer of ${declared} bytes exceeds the ${HUB_MAX_API_RESPONSE_BYTES}-byte limit`,
      );
    }
    const chunks: Uint8Array[] = [];
    let n = 0;
    for await (const chunk of res.body ?? []) {
      n += chunk.byteLength;
      if (n > HUB_MAX_API_RESPONSE_BYTES) {
        throw new HubError(`${what}: answer exceeds the ${HUB_MAX_API_RESPONSE_BYTES}-byte limit`);
      }
      chunks.push(chunk);
    }
    try {
      return { body: JSON.parse(Buffer.concat(chunks).toString("utf8")), res };
    } catch (cause) {
      throw new HubError(`${what}: answer is not JSON`, res.status, { cause });
    }
  });
}

function apiUrl(ctx: Ctx, path: string): string {
  return `${ctx.endpoint.replace(/\/+$/, "")}${path}`;
}

function encodePath(p: string): string {
  return p.split("/").map(encodeURIComponent).join("/");
}

/** Resolves `revision` to a commit sha. */
async function resolveCommit(ctx: Ctx, spec: HubModelSpec): Promise<string> {
  const url = apiUrl(
    ctx,
    `/api/models/${spec.repoId}/revision/${encodeURIComponent(spec.revision)}`,
  );
  const { body } = await getJson(ctx, url, `model ${spec.repoId}@${spec.revision}`);
  const sha = (body as { sha?: unknown }).sha;
  if (typeof sha !== "string" || !/^[0-9a-f]{40}$/.test(sha)) {
    throw new HubError(
      `model ${spec.repoId}@${spec.revision}: the revision API gave no commit sha`,
    );
  }
  return sha;
}

/** Lists the files of `commit` through the (paginated) tree API. */
async function listFiles(ctx: Ctx, repoId: string, commit: string): Promise<HubFile[]> {
  const files: HubFile[] = [];
  let url: string | undefined = apiUrl(ctx, `/api/models/${repoId}/tree/${commit}?recursive=true`);
  for (let page = 0; url; page++) {
    if (page >= HUB_MAX_TREE_PAGES)
      throw new HubError(`${repoId}: more than ${HUB_MAX_TREE_PAGES} tree pages`);
    const { body, res }: { body: unknown; res: Response } = await getJson(
      ctx,
      url,
      `file list of ${repoId}@${commit}`,
    );
    if (!Array.isArray(body))
      throw new HubError(`file list of ${repoId}@${commit} is not an array`);
    for (const e of body as Record<string, unknown>[]) {
      if (e.type !== "file") continue;
      const path = e.path;
      const lfs = e.lfs as { oid?: unknown; size?: unknown } | undefined;
      if (typeof path !== "string" || !safeRelativePath(path)) {
        throw new HubError(`${repoId}: unsafe file path ${JSON.stringify(path)} in the tree`);
      }
      if (typeof e.oid !== "string" || typeof e.size !== "number") {
        throw new HubError(`${repoId}: tree entry ${path} lacks oid or size`);
      }
      const lfsSha = typeof lfs?.oid === "string" ? lfs.oid : undefined;
      if (lfsSha !== undefined && !/^[0-9a-f]{64}$/.test(lfsSha)) {
        throw new HubError(`${repoId}: ${path} has a malformed LFS sha256 "${lfsSha}"`);
      }
      const size = typeof lfs?.size === "number" ? lfs.size : e.size;
      files.push(
        lfsSha ? { path, size, oid: e.oid, lfsSha256: lfsSha } : { path, size, oid: e.oid },
      );
      if (files.length > HUB_MAX_FILES)
        throw new HubError(`${repoId}: more than ${HUB_MAX_FILES} files`);
    }
    const next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get("link") ?? "");
    url = next ? new URL(next[1]!, url).toString() : undefined;
  }
  return files;
}

async function hashFilePrefix(path: string, hash: Hash, length: number): Promise<void> {
  if (length === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1 }))
    hash.update(chunk as Buffer);
}

/** Downloads one file into `blobs/<etag>`, resuming `<etag>.incomplete`, and verifies it. */
async function downloadBlob(
  ctx: Ctx,
  repoId: string,
  commit: string,
  file: HubFile,
  blobPath: string,
): Promise<void> {
  const incomplete = `${blobPath}.incomplete`;
  const url = apiUrl(ctx, `/${repoId}/resolve/${commit}/${encodePath(file.path)}`);
  const what = `${repoId}/${file.path}`;
  await withRetries(ctx, url, async () => {
    const have = await stat(incomplete).then(
      (s) => s.size,
      () => 0,
    );
    const from = have <= file.size ? have : 0;
    ctx.onEvent?.({ type: "file-start", path: file.path, size: file.size, resumeFrom: from });
    const seen: { linkedEtag?: string } = {};
    const res = await get(ctx, url, what, from > 0 ? { range: `bytes=${from}-` } : {}, seen);
    if (file.lfsSha256 && seen.linkedEtag && seen.linkedEtag !== file.lfsSha256) {
      await res.body?.cancel();
      throw new HubIntegrityError(
        `${what}: X-Linked-Etag ${seen.linkedEtag} differs from the tree's LFS sha256 ${file.lfsSha256}`,
      );
    }
    let start = 0;
    if (res.status === 206) {
      const m = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "");
      if (!m || Number(m[1]) !== from) {
        await res.body?.cancel();
        throw new RetryableError(
          `${what}: server answered range ${res.headers.get("content-range")} for bytes=${from}-`,
        );
      }
      start = from;
    }
    const fh = await open(incomplete, start > 0 ? "r+" : "w").catch(async (err: unknown) => {
      await res.body?.cancel();
      throw err;
    });
    const hash = createHash(file.lfsSha256 ? "sha256" : "sha1");
    try {
      if (!file.lfsSha256) hash.update(`blob ${file.size}\0`);
      await hashFilePrefix(incomplete, hash, start);
      let pos = start;
      try {
        for await (const chunk of res.body ?? []) {
          if (pos + chunk.byteLength > file.size) {
            throw new HubIntegrityError(
              `${what}: server sent more than the announced ${file.size} bytes`,
            );
          }
          await fh.write(chunk, 0, chunk.byteLength, pos);
          hash.update(chunk);
          pos += chunk.byteLength;
        }
      } catch (err) {
        if (err instanceof HubError) throw err;
        // The connection dropped: keep what arrived and resume from there on the next attempt.
        await fh.truncate(pos);
        throw new RetryableError(
          `${what}: connection lost after ${pos} of ${file.size} bytes: ${(err as Error).message}`,
        );
      }
      await fh.truncate(pos);
      if (pos !== file.size) {
        throw new RetryableError(`${what}: received ${pos} of ${file.size} bytes`);
      }
      const digest = hash.digest("hex");
      const want = file.lfsSha256 ?? file.oid;
      if (digest !== want) {
        throw new HubIntegrityError(
          `${what}: ${file.lfsSha256 ? "sha256" : "git blob sha1"} ${digest} does not match the Hub's ${want}`,
        );
      }
    } catch (err) {
      // Bad bytes must not be resumed from: start over next time.
      if (err instanceof HubIntegrityError) {
        await fh.close().catch(() => {});
        await rm(incomplete, { force: true });
      }
      throw err;
    } finally {
      await fh.close().catch(() => {});
    }
    await rename(incomplete, blobPath);
  });
}

/** Points `linkPath` at `target` (relative), replacing whatever was there atomically. */
async function linkInto(linkPath: string, blobPath: string): Promise<void> {
  await mkdir(dirname(linkPath), { recursive: true });
  const target = relative(dirname(linkPath), blobPath).split(sep).join("/");
  const current = await readlink(linkPath).catch(() => undefined);
  if (current === target) return;
  const tmp = `${linkPath}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  await symlink(target, tmp);
  await rename(tmp, linkPath);
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Downloads the checkpoint files of Hub model `spec` (`org/name[@revision]`) into the cache and
 * returns the snapshot folder (`.../snapshots/<commit>`), which then holds an HF checkpoint.
 */
export async function downloadHubModel(
  spec: string | HubModelSpec,
  options: HubDownloadOptions,
): Promise<string> {
  const parsed = typeof spec === "string" ? parseHubSpec(spec) : spec;
  if (!parsed) throw new HubError(`"${String(spec)}" is not a Hub model id (org/name[@revision])`);
  const ctx: Ctx = {
    endpoint: options.endpoint ?? HUB_DEFAULT_ENDPOINT,
    token: options.token,
    fetch: options.fetch ?? fetch,
    signal: options.signal,
    attempts: options.attempts ?? HUB_DEFAULT_ATTEMPTS,
    retryDelayMs: options.retryDelayMs ?? HUB_DEFAULT_RETRY_DELAY_MS,
    onEvent: options.onEvent,
  };
  const include = options.include ?? isCheckpointFile;
  const repoDir = hubRepoCacheDir(options.cacheDir, parsed.repoId);
  let commit: string;
  let files: HubFile[];
  try {
    commit = /^[0-9a-f]{40}$/.test(parsed.revision)
      ? parsed.revision
      : await resolveCommit(ctx, parsed);
    files = (await listFiles(ctx, parsed.repoId, commit)).filter((f) => include(f.path));
  } catch (err) {
    // Hub unreachable (not a refusal): serve the snapshot the cache already has for this
    // revision, as huggingface_hub does.
    const refused =
      err instanceof HubAuthError || err instanceof HubNotFoundError || ctx.signal?.aborted;
    const cachedCommit = refused ? undefined : await cachedHubCommit(options.cacheDir, parsed);
    const known =
      cachedCommit ?? (/^[0-9a-f]{40}$/.test(parsed.revision) ? parsed.revision : undefined);
    const snapshot = known ? join(repoDir, "snapshots", known) : undefined;
    if (!snapshot || !known || !(await exists(join(snapshot, "config.json")))) throw err;
    ctx.onEvent?.({
      type: "offline",
      repoId: parsed.repoId,
      commit: known,
      reason: (err as Error).message,
    });
    return snapshot;
  }
  if (!files.some((f) => f.path === "config.json")) {
    throw new HubError(
      `${parsed.repoId}@${commit} has no config.json: not a transformers checkpoint`,
    );
  }
  ctx.onEvent?.({ type: "resolved", repoId: parsed.repoId, commit, files: files.length });
  const snapshot = join(repoDir, "snapshots", commit);
  await mkdir(join(repoDir, "blobs"), { recursive: true });
  for (const file of files) {
    ctx.signal?.throwIfAborted();
    const etag = file.lfsSha256 ?? file.oid;
    const blobPath = join(repoDir, "blobs", etag);
    const linkPath = join(snapshot, ...file.path.split("/"));
    const cached = await exists(blobPath);
    if (!cached) await downloadBlob(ctx, parsed.repoId, commit, file, blobPath);
    await linkInto(linkPath, blobPath);
    ctx.onEvent?.({ type: "file-done", path: file.path, cached });
  }
  if (parsed.revision !== commit) {
    const ref = join(repoDir, "refs", ...parsed.revision.split("/"));
    await mkdir(dirname(ref), { recursive: true });
    const tmp = `${ref}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    await writeFile(tmp, commit);
    await rename(tmp, ref);
  }
  return snapshot;
}

/** The commit a cached `refs/<revision>` points to, if the cache has one. */
export async function cachedHubCommit(
  cacheDir: string,
  spec: HubModelSpec,
): Promise<string | undefined> {
  const ref = join(hubRepoCacheDir(cacheDir, spec.repoId), "refs", ...spec.revision.split("/"));
  const text = await readFile(ref, "utf8").catch(() => undefined);
  return text?.trim() || undefined;
}
