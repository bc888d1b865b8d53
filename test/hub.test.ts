/**
 * Hub downloads against a local Hub-like server (node:http): revision and paginated tree APIs,
 * resolve endpoints that redirect LFS files to a second "CDN" server, Range requests, a connection
 * dropped mid-file, a 503 to retry, private and unknown repositories, corrupted content.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { lstat, mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  downloadHubModel,
  HubAuthError,
  HubError,
  type HubEvent,
  HubIntegrityError,
  HubNotFoundError,
  hubOptionsFromEnv,
  hubRepoCacheDir,
  parseHubSpec,
  resolveModel,
} from "@abl/checkpoint";

const ROOT = new URL("../", import.meta.url).pathname;
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const TOKEN = "hf_secret";

interface RepoFile {
  readonly path: string;
  readonly data: Buffer;
  readonly lfs: boolean;
  /** What the server actually sends (differs from data to simulate corruption). */
  readonly served?: Buffer;
}

function gitSha1(data: Buffer): string {
  return createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");
}
function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

const weights = randomBytes(300_000);
const repos: Record<string, { private: boolean; files: RepoFile[] }> = {
  "org/tiny": {
    private: false,
    files: [
      { path: "config.json", data: Buffer.from('{"model_type":"llama"}\n'), lfs: false },
      { path: "tokenizer.json", data: Buffer.from('{"model":{}}\n'), lfs: false },
      { path: "model.safetensors", data: weights, lfs: true },
      { path: "README.md", data: Buffer.from("# tiny\n"), lfs: false },
      { path: "extra/notes.json", data: Buffer.from("{}"), lfs: false },
    ],
  },
  "org/private": {
    private: true,
    files: [{ path: "config.json", data: Buffer.from('{"private":true}'), lfs: false }],
  },
  "org/etag": {
    private: false,
    files: [
      { path: "config.json", data: Buffer.from("{}"), lfs: false },
      { path: "model.safetensors", data: Buffer.alloc(64, 3), lfs: true },
    ],
  },
  "org/corrupt": {
    private: false,
    files: [
      { path: "config.json", data: Buffer.from("{}"), lfs: false },
      {
        path: "model.safetensors",
        data: Buffer.alloc(1000, 1),
        served: Buffer.alloc(1000, 2),
        lfs: true,
      },
    ],
  },
};

const log = {
  cdnAuth: [] as string[],
  cdnRanges: [] as string[],
  resolves: 0,
  dropped: 0,
  failedOnce: false,
};

function listen(s: Server): Promise<number> {
  return new Promise((r) => s.listen(0, "127.0.0.1", () => r((s.address() as AddressInfo).port)));
}

/** Serves `body` honouring a `Range: bytes=N-` header; drops the connection halfway when asked. */
function sendBody(req: IncomingMessage, res: ServerResponse, body: Buffer, drop: boolean): void {
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const start = range ? Number(range[1]) : 0;
  const headers: Record<string, string | number> = { "content-length": body.length - start };
  if (range) headers["content-range"] = `bytes ${start}-${body.length - 1}/${body.length}`;
  res.writeHead(range ? 206 : 200, headers);
  if (drop) {
    res.write(body.subarray(start, start + Math.floor((body.length - start) / 2)), () =>
      res.socket?.destroy(),
    );
    return;
  }
  res.end(body.subarray(start));
}

let hub: Server;
let cdn: Server;
let endpoint: string;
let cdnBase: string;
let cache: string;

before(async () => {
  cache = await mkdtemp(join(tmpdir(), "abl-hub-"));
  cdn = createServer((req, res) => {
    log.cdnAuth.push(req.headers.authorization ?? "");
    log.cdnRanges.push(req.headers.range ?? "");
    const m = /^\/cdn\/([^/]+)\/(.+)$/.exec(req.url ?? "");
    const file = m
      ? repos[decodeURIComponent(m[1]!)]?.files.find((f) => f.path === m[2])
      : undefined;
    if (!file) return void res.writeHead(404).end();
    const drop = m![1] === encodeURIComponent("org/tiny") && log.dropped === 0;
    if (drop) log.dropped++;
    sendBody(req, res, file.served ?? file.data, drop);
  });
  hub = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res
        .writeHead(status, { "content-type": "application/json", ...headers })
        .end(JSON.stringify(body));
    };
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^?]+)$/.exec(url.pathname);
    const resolveM = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const repoId = api?.[1] ?? resolveM?.[1];
    const repo = repoId ? repos[repoId] : undefined;
    if (!repo) return json(404, { error: "Repository not found" });
    if (repo.private && req.headers.authorization !== `Bearer ${TOKEN}`)
      return json(401, { error: "unauthorized" });
    if (api?.[2] === "revision") return json(200, { id: repoId, sha: COMMIT });
    if (api?.[2] === "tree") {
      const entries = repo.files.map((f) => ({
        type: "file",
        path: f.path,
        oid: f.lfs ? gitSha1(Buffer.from(`pointer ${sha256(f.data)}`)) : gitSha1(f.data),
        size: f.lfs ? 134 : f.data.length,
        ...(f.lfs ? { lfs: { oid: sha256(f.data), size: f.data.length, pointerSize: 134 } } : {}),
      }));
      // Two pages, linked as the Hub does, to exercise pagination.
      const cursor = url.searchParams.get("cursor");
      const half = Math.ceil(entries.length / 2);
      if (!cursor) {
        return json(200, entries.slice(0, half), {
          link: `<${url.pathname}?recursive=true&cursor=2>; rel="next"`,
        });
      }
      return json(200, entries.slice(half));
    }
    if (resolveM) {
      log.resolves++;
      const path = decodeURIComponent(resolveM[3]!);
      const file = repo.files.find((f) => f.path === path);
      if (!file || resolveM[2] !== COMMIT) return json(404, { error: "Entry not found" });
      if (path === "tokenizer.json" && !log.failedOnce) {
        log.failedOnce = true;
        return json(503, { error: "try again" });
      }
      if (file.lfs) {
        res
          .writeHead(302, {
            location: `${cdnBase}/cdn/${encodeURIComponent(repoId!)}/${path}`,
            "x-linked-etag": `"${repoId === "org/etag" ? "f".repeat(64) : sha256(file.data)}"`,
            "x-linked-size": String(file.data.length),
            "x-repo-commit": COMMIT,
          })
          .end();
        return;
      }
      res.setHeader("x-repo-commit", COMMIT);
      res.setHeader("etag", `"${gitSha1(file.data)}"`);
      return sendBody(req, res, file.served ?? file.data, false);
    }
    json(404, { error: "not found" });
  });
  endpoint = `http://127.0.0.1:${await listen(hub)}`;
  cdnBase = `http://127.0.0.1:${await listen(cdn)}`;
});

after(async () => {
  await new Promise((r) => hub.close(r));
  await new Promise((r) => cdn.close(r));
  await rm(cache, { recursive: true, force: true });
});

describe("downloadHubModel", () => {
  it("parses model specs", () => {
    assert.deepEqual(parseHubSpec("HuggingFaceTB/SmolLM2-135M-Instruct"), {
      repoId: "HuggingFaceTB/SmolLM2-135M-Instruct",
      revision: "main",
    });
    assert.deepEqual(parseHubSpec("org/name@v1.0"), { repoId: "org/name", revision: "v1.0" });
    assert.equal(parseHubSpec("just-a-name"), undefined);
    assert.equal(parseHubSpec("../etc/passwd"), undefined);
    assert.equal(parseHubSpec("a/b/c"), undefined);
  });

  it("reads HF_TOKEN, HF_ENDPOINT and the cache location as huggingface_hub does", () => {
    assert.deepEqual(hubOptionsFromEnv({}, "/home/u"), {
      cacheDir: "/home/u/.cache/huggingface/hub",
    });
    assert.deepEqual(
      hubOptionsFromEnv({ HF_HOME: "/hf", HF_TOKEN: "t", HF_ENDPOINT: "http://e" }, "/home/u"),
      {
        cacheDir: "/hf/hub",
        endpoint: "http://e",
        token: "t",
      },
    );
    assert.equal(hubOptionsFromEnv({ HF_HUB_CACHE: "/c", HF_HOME: "/hf" }, "/h").cacheDir, "/c");
    assert.equal(hubOptionsFromEnv({ XDG_CACHE_HOME: "/x" }, "/h").cacheDir, "/x/huggingface/hub");
  });

  it("downloads into an HF-layout cache, resuming a dropped LFS download, with a token only for the Hub", async () => {
    const events: HubEvent[] = [];
    const snapshot = await downloadHubModel("org/tiny", {
      cacheDir: cache,
      endpoint,
      token: TOKEN,
      retryDelayMs: 1,
      onEvent: (e) => events.push(e),
    });
    const repoDir = hubRepoCacheDir(cache, "org/tiny");
    assert.equal(repoDir, join(cache, "models--org--tiny"));
    assert.equal(snapshot, join(repoDir, "snapshots", COMMIT));
    assert.deepEqual((await readdir(snapshot)).sort(), [
      "config.json",
      "model.safetensors",
      "tokenizer.json",
    ]);
    assert.deepEqual(await readFile(join(snapshot, "model.safetensors")), weights);
    assert.equal(
      await readlink(join(snapshot, "model.safetensors")),
      `../../blobs/${sha256(weights)}`,
    );
    const config = repos["org/tiny"]!.files[0]!;
    assert.equal(
      await readlink(join(snapshot, "config.json")),
      `../../blobs/${gitSha1(config.data)}`,
    );
    assert.equal((await readFile(join(repoDir, "refs", "main"), "utf8")).trim(), COMMIT);
    assert.deepEqual(
      (await readdir(join(repoDir, "blobs"))).filter((n) => n.endsWith(".incomplete")),
      [],
    );
    // The first CDN request was cut halfway; the retry asked for the rest only.
    assert.equal(log.dropped, 1);
    assert.equal(log.cdnRanges[0], "");
    assert.match(log.cdnRanges[1] ?? "", /^bytes=\d+-$/);
    assert.ok(Number(/\d+/.exec(log.cdnRanges[1]!)![0]) > 0);
    const resumed = events.find(
      (e) => e.type === "file-start" && e.path === "model.safetensors" && e.resumeFrom > 0,
    );
    assert.ok(resumed, "a resumed file-start event");
    assert.ok(events.some((e) => e.type === "retry" && /HTTP 503/.test(e.reason)));
    assert.ok(
      log.cdnAuth.every((a) => a === ""),
      "the token must not reach the CDN",
    );
  });

  it("serves a second download from the cache without fetching files", async () => {
    const before = log.resolves;
    const events: HubEvent[] = [];
    await downloadHubModel("org/tiny@main", {
      cacheDir: cache,
      endpoint,
      onEvent: (e) => events.push(e),
    });
    assert.equal(log.resolves, before);
    assert.ok(
      events.filter((e) => e.type === "file-done").every((e) => e.type === "file-done" && e.cached),
    );
  });

  it("explains 401 and 404", async () => {
    await assert.rejects(
      downloadHubModel("org/private", { cacheDir: cache, endpoint }),
      (e: unknown) =>
        e instanceof HubAuthError && e.status === 401 && /set HF_TOKEN/.test(e.message),
    );
    await assert.rejects(
      downloadHubModel("org/private", { cacheDir: cache, endpoint, token: "wrong" }),
      (e: unknown) => e instanceof HubAuthError && /the token has no access/.test(e.message),
    );
    await assert.rejects(
      downloadHubModel("org/missing", { cacheDir: cache, endpoint }),
      (e: unknown) =>
        e instanceof HubNotFoundError && /org\/missing@main: not found \(404\)/.test(e.message),
    );
  });

  it("rejects content whose sha256 differs from the LFS id and keeps no partial blob", async () => {
    await assert.rejects(
      downloadHubModel("org/corrupt", { cacheDir: cache, endpoint, retryDelayMs: 1 }),
      (e: unknown) =>
        e instanceof HubIntegrityError &&
        /sha256 [0-9a-f]{64} does not match the Hub's/.test(e.message),
    );
    const blobs = await readdir(join(hubRepoCacheDir(cache, "org/corrupt"), "blobs"));
    assert.ok(
      !blobs.some((b) => b === sha256(Buffer.alloc(1000, 1)) || b.endsWith(".incomplete")),
      blobs.join(),
    );
  });

  it("rejects an LFS file whose X-Linked-Etag contradicts the tree", async () => {
    await assert.rejects(
      downloadHubModel("org/etag", { cacheDir: cache, endpoint }),
      (e: unknown) =>
        e instanceof HubIntegrityError &&
        /X-Linked-Etag f{64} differs from the tree's LFS sha256/.test(e.message),
    );
  });

  it("falls back to the cached snapshot of a revision when the Hub is unreachable", async () => {
    const events: HubEvent[] = [];
    const snapshot = await downloadHubModel("org/tiny@main", {
      cacheDir: cache,
      endpoint: "http://127.0.0.1:1",
      attempts: 1,
      onEvent: (e) => events.push(e),
    });
    assert.equal(snapshot, join(hubRepoCacheDir(cache, "org/tiny"), "snapshots", COMMIT));
    assert.ok(events.some((e) => e.type === "offline" && e.commit === COMMIT));
  });

  it("gives up on an unreachable endpoint after its attempts", async () => {
    await assert.rejects(
      downloadHubModel("org/tiny@v2", {
        cacheDir: cache,
        endpoint: "http://127.0.0.1:1",
        attempts: 2,
        retryDelayMs: 1,
      }),
      (e: unknown) => e instanceof HubError && /gave up after 2 attempts/.test(e.message),
    );
  });
});

describe("resolveModel", () => {
  it("accepts a local folder, a GGUF file (converted once, keyed by sha256) and a Hub id", async () => {
    const snapshot = await resolveModel("org/tiny", { cacheDir: cache, endpoint });
    assert.equal(snapshot, join(hubRepoCacheDir(cache, "org/tiny"), "snapshots", COMMIT));
    assert.equal(await resolveModel(snapshot, { cacheDir: cache }), snapshot);

    const gguf = join(ROOT, "libs/checkpoint/fixtures/gguf/tiny-qwen2.gguf");
    const digest = sha256(await readFile(gguf));
    const converted = await resolveModel(gguf, { cacheDir: cache });
    assert.equal(converted, join(cache, "gguf", digest));
    assert.ok((await lstat(join(converted, "model.safetensors"))).isFile());
    const again = await resolveModel(gguf, { cacheDir: cache });
    assert.equal(again, converted);

    await assert.rejects(
      resolveModel("not a model", { cacheDir: cache }),
      /neither a local folder, a GGUF file nor a Hub id/,
    );
    await assert.rejects(
      resolveModel(join(ROOT, "package.json"), { cacheDir: cache }),
      /not a GGUF model/,
    );
    await assert.rejects(
      resolveModel(join(ROOT, "libs"), { cacheDir: cache }),
      /without config.json/,
    );
  });
});
