import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  truncate,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLocalStore, type ObjectStore, publishArtifact } from "@abl/store";
import { ModelCacheError } from "./errors.ts";
import { createModelCache, MODEL_CACHE_MARKER } from "./model-cache.ts";

/** A store that counts whole-object reads, to tell a reuse from a fetch. */
function counting(store: ObjectStore): ObjectStore & { gets: string[] } {
  const gets: string[] = [];
  return {
    kind: store.kind,
    location: store.location,
    gets,
    put: (k, b, o) => store.put(k, b, o),
    get: (k, o) => {
      if (!k.endsWith("manifest.json")) gets.push(k);
      return store.get(k, o);
    },
    getBytes: (k, o) => store.getBytes(k, o),
    stat: (k) => store.stat(k),
    list: (p, o) => store.list(p, o),
    delete: (k) => store.delete(k),
  };
}

const text = (s: string) => new TextEncoder().encode(s);

async function publishModel(
  store: ObjectStore,
  prefix: string,
  weights: string,
  meta: Record<string, unknown> = { kind: "model" },
): Promise<void> {
  await publishArtifact(
    store,
    prefix,
    [
      { name: "config.json", body: text('{"model_type":"llama"}') },
      { name: "model.safetensors", body: text(weights) },
      { name: "nested/tokenizer.json", body: text("{}") },
    ],
    meta,
  );
}

describe("model cache", () => {
  let root = "";
  let store: ObjectStore & { gets: string[] };
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "abl-model-cache-"));
    store = counting(createLocalStore({ root: join(root, "store"), fsync: false }));
    await publishModel(store, "models/a", "weights of model a");
    await publishModel(store, "models/b", "weights of model b, a little longer");
  });
  after(() => rm(root, { recursive: true, force: true }));

  it("fills once and reuses the entry across acquisitions and cache instances", async () => {
    const dir = join(root, "reuse");
    const cache = createModelCache({ store, dir });
    const before = store.gets.length;
    const first = await cache.acquire("models/a/", "sha256:aaa");
    assert.equal(first.fetched, true);
    assert.equal(first.dir, join(dir, "sha256_aaa"));
    assert.equal(
      await readFile(join(first.dir, "model.safetensors"), "utf8"),
      "weights of model a",
    );
    assert.equal(await readFile(join(first.dir, "nested/tokenizer.json"), "utf8"), "{}");
    assert.equal(store.gets.length - before, 3);
    first.release();
    const second = await cache.acquire("models/a", "sha256:aaa");
    assert.equal(second.fetched, false);
    // A new process (a restarted service) reuses the entry on disk too.
    const third = await createModelCache({ store, dir }).acquire("models/a", "sha256:aaa");
    assert.equal(third.fetched, false);
    assert.equal(store.gets.length - before, 3, "no file was read again");
    assert.deepEqual(await cache.usage(), { entries: 1, bytes: first.bytes });
  });

  it("refetches when the entry does not match: changed store copy, other digest, damaged file", async () => {
    const s = counting(createLocalStore({ root: join(root, "store-mismatch"), fsync: false }));
    await publishModel(s, "models/m", "version one");
    const dir = join(root, "mismatch");
    const cache = createModelCache({ store: s, dir });
    const a = await cache.acquire("models/m", "sha256:m");
    assert.equal(a.fetched, true);

    // The store's copy under the prefix changed: the entry's files no longer match its manifest.
    await publishModel(s, "models/m", "version two, other bytes");
    const b = await cache.acquire("models/m", "sha256:m");
    assert.equal(b.fetched, true);
    assert.equal(
      await readFile(join(b.dir, "model.safetensors"), "utf8"),
      "version two, other bytes",
    );

    // The marker names another digest (a folder written under the wrong name).
    const markerPath = join(b.dir, MODEL_CACHE_MARKER);
    const marker = JSON.parse(await readFile(markerPath, "utf8")) as { digest: string };
    await writeFile(markerPath, JSON.stringify({ ...marker, digest: "sha256:other" }));
    assert.equal((await cache.acquire("models/m", "sha256:m")).fetched, true);

    // A file of the entry was truncated on disk.
    await truncate(join(b.dir, "model.safetensors"), 3);
    const c = await cache.acquire("models/m", "sha256:m");
    assert.equal(c.fetched, true);
    assert.equal(
      await readFile(join(c.dir, "model.safetensors"), "utf8"),
      "version two, other bytes",
    );
    assert.equal((await cache.acquire("models/m", "sha256:m")).fetched, false);
  });

  it("refuses a store copy whose manifest names another digest, and missing or oversized models", async () => {
    const s = createLocalStore({ root: join(root, "store-bad"), fsync: false });
    await publishModel(s, "models/x", "x", { kind: "model", digest: "sha256:x" });
    const cache = createModelCache({ store: s, dir: join(root, "bad"), maxBytes: 64 });
    await assert.rejects(
      cache.acquire("models/x", "sha256:y"),
      (e: Error) =>
        e instanceof ModelCacheError &&
        /models\/x holds model sha256:x, not the requested sha256:y/.test(e.message),
    );
    assert.equal((await cache.acquire("models/x", "sha256:x")).fetched, true);
    await assert.rejects(
      cache.acquire("models/none", "sha256:n"),
      (e: Error) => e instanceof ModelCacheError && /manifest.json is missing/.test(e.message),
    );
    await publishModel(s, "models/gone", "g");
    await s.delete("models/gone/model.safetensors");
    await assert.rejects(
      cache.acquire("models/gone", "sha256:g"),
      (e: Error) =>
        e instanceof ModelCacheError &&
        /models\/gone\/model.safetensors is listed in the model's manifest but not in the store/.test(
          e.message,
        ),
    );
    await publishModel(s, "models/big", "w".repeat(100));
    await assert.rejects(
      cache.acquire("models/big", "sha256:big"),
      (e: Error) =>
        e instanceof ModelCacheError &&
        /is 124 bytes, over the cache's 64-byte budget/.test(e.message),
    );
    await assert.rejects(
      cache.acquire("models/x", "sha256:../x"),
      (e: Error) => e instanceof ModelCacheError && /\[A-Za-z0-9_.:-\]/.test(e.message),
    );
  });

  it("shares one fill between concurrent callers, and between processes on one folder", async () => {
    const dir = join(root, "concurrent");
    const cache = createModelCache({ store, dir });
    const before = store.gets.length;
    const leases = await Promise.all([1, 2, 3].map(() => cache.acquire("models/b", "sha256:b")));
    assert.equal(store.gets.length - before, 3, "three callers, one fill of three files");
    assert.ok(leases.every((l) => l.dir === leases[0]?.dir));

    // Two caches (two services sharing a node's folder) fill the same digest at once.
    const dir2 = join(root, "concurrent-2");
    const [x, y] = await Promise.all([
      createModelCache({ store, dir: dir2 }).acquire("models/b", "sha256:b"),
      createModelCache({ store, dir: dir2 }).acquire("models/b", "sha256:b"),
    ]);
    assert.equal(x.dir, y.dir);
    assert.equal(
      await readFile(join(x.dir, "model.safetensors"), "utf8"),
      "weights of model b, a little longer",
    );
    assert.deepEqual(await readdir(dir2), ["sha256_b"], "no fill folder is left behind");
  });

  it("ignores and removes what a crashed fill left, keeps a live process's fill", async () => {
    const dir = join(root, "crash");
    await mkdir(dir, { recursive: true });
    const dead = spawnSync(process.execPath, ["-e", ""]).pid as number;
    const leftover = join(dir, `sha256_a.fill-${dead}-0123abcd`);
    await mkdir(leftover);
    await writeFile(join(leftover, "model.safetensors"), "half");
    await mkdir(join(dir, ".trash-0123"));
    // An entry without a marker (a copy from before markers, or one written by hand).
    await mkdir(join(dir, "sha256_a"));
    await writeFile(join(dir, "sha256_a", "model.safetensors"), "stale");
    const live = join(dir, `sha256_z.fill-${process.pid}-0123abcd`);
    await mkdir(live);
    const lease = await createModelCache({ store, dir }).acquire("models/a", "sha256:a");
    assert.equal(lease.fetched, true);
    assert.equal(
      await readFile(join(lease.dir, "model.safetensors"), "utf8"),
      "weights of model a",
    );
    assert.deepEqual((await readdir(dir)).sort(), [
      "sha256_a",
      `sha256_z.fill-${process.pid}-0123abcd`,
    ]);
  });

  it("evicts the least recently used entry without a lease past the byte budget", async () => {
    const dir = join(root, "evict");
    await publishModel(store, "models/c", "weights of c");
    // Sizes: a 42, b 59, c 36 bytes. Room for two of them, never for all three.
    const cache = createModelCache({ store, dir, maxBytes: 110 });
    const a = await cache.acquire("models/a", "sha256:a");
    const b = await cache.acquire("models/b", "sha256:b");
    const c = await cache.acquire("models/c", "sha256:c");
    assert.deepEqual(
      (await readdir(dir)).sort(),
      ["sha256_a", "sha256_b", "sha256_c"],
      "leased: all kept",
    );
    a.release();
    b.release();
    c.release();
    // b was used longest ago; a is used again now.
    await utimes(join(dir, "sha256_b", MODEL_CACHE_MARKER), new Date(2000, 0), new Date(2000, 0));
    assert.equal((await cache.acquire("models/a", "sha256:a")).fetched, false);
    await rm(join(dir, "sha256_c"), { recursive: true });
    assert.equal((await cache.acquire("models/c", "sha256:c")).fetched, true);
    assert.deepEqual((await readdir(dir)).sort(), ["sha256_a", "sha256_c"], "b was evicted");
  });

  it("stops a fill when aborted and leaves nothing behind", async () => {
    const dir = join(root, "abort");
    const cache = createModelCache({ store, dir });
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(cache.acquire("models/a", "sha256:a", ac.signal), { name: "AbortError" });
    assert.deepEqual(await readdir(dir), []);
    assert.equal((await cache.acquire("models/a", "sha256:a")).fetched, true);
  });
  it("hands a fetched model out in memory too, to the caller that asked", async () => {
    const dir = join(root, "memory");
    const cache = createModelCache({ store, dir });
    const [first, second] = await Promise.all([
      cache.acquire("models/b", "sha256:b", undefined, { memory: true }),
      cache.acquire("models/b", "sha256:b"),
    ]);
    assert.equal(first.fetched, true);
    assert.deepEqual(
      new Map([...(first.files ?? [])].map(([k, v]) => [k, new TextDecoder().decode(v)])),
      new Map([
        ["config.json", '{"model_type":"llama"}'],
        ["model.safetensors", "weights of model b, a little longer"],
        ["nested/tokenizer.json", "{}"],
      ]),
    );
    assert.equal(second.files, undefined, "only the caller that asked gets the bytes");
    assert.equal(
      await readFile(join(second.dir, "model.safetensors"), "utf8"),
      "weights of model b, a little longer",
    );
    assert.deepEqual(await readdir(dir), ["sha256_b"], "no fill folder is left behind");
    const third = await cache.acquire("models/b", "sha256:b", undefined, { memory: true });
    assert.equal(third.fetched, false, "the entry serves later callers");
    assert.equal(third.files, undefined);
    // A model over the in-memory cap is fetched to disk only.
    const capped = createModelCache({ store, dir: join(root, "memory-capped"), maxHeldBytes: 50 });
    const big = await capped.acquire("models/b", "sha256:b", undefined, { memory: true });
    assert.equal(big.fetched, true);
    assert.equal(big.files, undefined, `${big.bytes} bytes are over the 50-byte cap`);
  });

  it("writes a multi-piece download in order and rejects a store sending too much", async () => {
    const s = createLocalStore({ root: join(root, "store-big"), fsync: false });
    // 9 MiB and a bit: several write pieces, the last one partial.
    const big = new Uint8Array(9 * 1024 * 1024 + 12345);
    for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
    await publishArtifact(s, "models/big", [{ name: "model.safetensors", body: big }], {
      kind: "model",
    });
    for (const memory of [false, true]) {
      const dir = join(root, `big-${memory}`);
      const lease = await createModelCache({ store: s, dir }).acquire(
        "models/big",
        "sha256:big",
        undefined,
        { memory },
      );
      assert.ok(Buffer.from(big).equals(await readFile(join(lease.dir, "model.safetensors"))));
      if (memory)
        assert.ok(
          Buffer.from(big).equals(lease.files?.get("model.safetensors") ?? Buffer.alloc(0)),
        );
    }
    // A store whose stream runs past the recorded size (a corrupt proxy, say).
    const overlong: ObjectStore = {
      ...s,
      get: async function* (k, o) {
        yield* s.get(k, o);
        if (k.endsWith("model.safetensors")) yield new Uint8Array(3);
      },
    };
    for (const memory of [false, true]) {
      const dir = join(root, `overlong-${memory}`);
      await assert.rejects(
        createModelCache({ store: overlong, dir }).acquire("models/big", "sha256:big", undefined, {
          memory,
        }),
        (e: Error) =>
          e.name === "IntegrityError" && e.message.includes(`more than the ${big.length} bytes`),
      );
      assert.deepEqual(await readdir(dir), [], "nothing is left behind");
    }
  });
});
