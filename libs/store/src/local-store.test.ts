import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { collectBytes } from "./body.ts";
import { IntegrityError, InvalidKeyError, ObjectNotFoundError, StoreError } from "./errors.ts";
import { createLocalStore } from "./local-store.ts";
import type { ObjectStore } from "./object-store.ts";
import { sha256Hex } from "./step-key.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

async function* chunks(n: number, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < n; i++) yield new Uint8Array(size).fill(i & 0xff);
}

describe("local store", () => {
  let root: string;
  let store: ObjectStore;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "abl-local-store-"));
    store = createLocalStore({ root, fsync: false });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("round-trips buffers and streams with the sha256 of their bytes", async () => {
    const info = await store.put("models/m1/config.json", enc('{"a":1}'));
    assert.equal(info.size, 7);
    assert.equal(info.sha256, sha256Hex('{"a":1}'));
    assert.equal(dec(await store.getBytes("models/m1/config.json")), '{"a":1}');
    // The object is a plain file at its key, usable by other tools.
    assert.equal(await readFile(join(root, "models/m1/config.json"), "utf8"), '{"a":1}');

    const big = await store.put("models/m1/w.bin", chunks(10, 100_000), { size: 1_000_000 });
    const all = await store.getBytes("models/m1/w.bin");
    assert.equal(all.byteLength, 1_000_000);
    assert.equal(big.sha256, sha256Hex(all));
    assert.deepEqual(await store.stat("models/m1/w.bin"), {
      ...big,
      lastModified: (await store.stat("models/m1/w.bin"))!.lastModified,
    });
  });

  it("reads ranges, clamped to the end", async () => {
    await store.put("r/x", enc("0123456789"));
    assert.equal(dec(await store.getBytes("r/x", { range: { offset: 3, length: 4 } })), "3456");
    assert.equal(dec(await store.getBytes("r/x", { range: { offset: 8, length: 100 } })), "89");
    assert.equal((await store.getBytes("r/x", { range: { offset: 50, length: 1 } })).byteLength, 0);
  });

  it("lists by prefix in key order and hides its own bookkeeping", async () => {
    await store.put("l/a-c", enc("1"));
    await store.put("l/a/b", enc("2"));
    await store.put("l/b", enc("3"));
    await store.put("lz", enc("4"));
    const keys: string[] = [];
    for await (const i of store.list("l/")) keys.push(i.key);
    assert.deepEqual(keys, ["l/a-c", "l/a/b", "l/b"]);
    const partial: string[] = [];
    for await (const i of store.list("l/a")) partial.push(i.key);
    assert.deepEqual(partial, ["l/a-c", "l/a/b"]);
    const everything: string[] = [];
    for await (const i of store.list("")) everything.push(i.key);
    assert.ok(everything.every((k) => !k.startsWith(".abl")));
    assert.ok(everything.includes("lz"));
  });

  it("deletes objects and reports absent ones", async () => {
    await store.put("d/one", enc("x"));
    await store.delete("d/one");
    assert.equal(await store.stat("d/one"), undefined);
    await store.delete("d/one");
    await assert.rejects(store.getBytes("d/one"), ObjectNotFoundError);
    await assert.rejects(collectBytes(store.get("never/was")), ObjectNotFoundError);
  });

  it("detects a byte flipped behind its back", async () => {
    await store.put("c/flip", enc("hello world"));
    const path = join(root, "c/flip");
    const bytes = await readFile(path);
    bytes[4] = bytes[4]! ^ 0x01;
    await writeFile(path, bytes);
    await assert.rejects(store.getBytes("c/flip"), (err: unknown) => {
      assert.ok(err instanceof IntegrityError);
      assert.match(err.message, /corrupt/);
      assert.match(err.message, new RegExp(sha256Hex("hello world")));
      return true;
    });
  });

  it("detects a missing checksum sidecar and a truncated file", async () => {
    await store.put("c/nosidecar", enc("abc"));
    await rm(join(root, ".abl-meta/c/nosidecar.json"));
    await assert.rejects(store.getBytes("c/nosidecar"), IntegrityError);
    await store.put("c/trunc", enc("abcdef"));
    await writeFile(join(root, "c/trunc"), "abc");
    await assert.rejects(store.stat("c/trunc"), IntegrityError);
  });

  it("rejects keys that are malformed or escape the root", async () => {
    for (const key of [
      "../etc/passwd",
      "a/../../x",
      "/abs",
      "a//b",
      "a/./b",
      "",
      "a/",
      "sp ace",
      "a\\b",
      ".abl-meta/x",
      "x".repeat(901),
    ]) {
      await assert.rejects(store.put(key, enc("x")), InvalidKeyError, `key ${JSON.stringify(key)}`);
      await assert.rejects(collectBytes(store.get(key)), InvalidKeyError);
    }
    await assert.rejects(async () => {
      for await (const _ of store.list("../")) break;
    }, InvalidKeyError);
    // Nothing was written outside the root.
    const top = await readdir(root);
    assert.ok(!top.includes("etc"));
  });

  it("keeps the old object when a write fails or is aborted, and leaves no temp files", async () => {
    await store.put("a/keep", enc("old"));
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield enc("new-partial");
      throw new Error("writer died");
    }
    await assert.rejects(store.put("a/keep", failing()), /writer died/);
    const ac = new AbortController();
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield enc("n");
      ac.abort();
      yield enc("ew");
    }
    await assert.rejects(store.put("a/keep", slow(), { signal: ac.signal }), {
      name: "AbortError",
    });
    assert.equal(dec(await store.getBytes("a/keep")), "old");
    assert.deepEqual(await readdir(join(root, ".abl-tmp")), []);
  });

  it("checks the declared size and sha256", async () => {
    await assert.rejects(
      store.put("s/short", enc("abc"), { size: 4 }),
      (e: unknown) => e instanceof StoreError && /3 bytes, declared size 4/.test(e.message),
    );
    await assert.rejects(
      store.put("s/long", enc("abcde"), { size: 4 }),
      /longer than the declared size 4/,
    );
    await assert.rejects(
      store.put("s/sha", enc("abc"), { sha256: sha256Hex("abd") }),
      IntegrityError,
    );
    await assert.rejects(store.put("s/badsha", enc("abc"), { sha256: "xyz" }), /64 lower-case hex/);
    assert.equal(await store.stat("s/short"), undefined);
    assert.equal(
      (await store.put("s/ok", enc("abc"), { sha256: sha256Hex("abc"), size: 3 })).size,
      3,
    );
  });
});
