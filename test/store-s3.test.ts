/**
 * The S3 object store against a real MinIO server: streamed 1 GiB round trip with bounded memory
 * and a verified sha256, corruption detection, manifest-last artifacts, ranges, listing,
 * presigned URLs and rejection of bad input.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { type S3Server, startS3 } from "@abl/e2e/servers";
import {
  artifactExists,
  BucketNotFoundError,
  collectBytes,
  createArtifactWriter,
  createS3Store,
  IntegrityError,
  InvalidKeyError,
  listArtifacts,
  ObjectNotFoundError,
  type ObjectStore,
  publishArtifact,
  readArtifact,
  readArtifactFile,
  StoreError,
} from "@abl/store";
import { Client } from "minio";

const MiB = 1024 * 1024;
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** Deterministic bytes made on the fly: chunk i is filled with i and stamped with its index. */
function* pattern(
  chunks: number,
  chunkSize: number,
  hash?: ReturnType<typeof createHash>,
): Generator<Uint8Array> {
  for (let i = 0; i < chunks; i++) {
    const b = Buffer.allocUnsafe(chunkSize).fill(i & 0xff);
    b.writeUInt32LE(i, 0);
    hash?.update(b);
    yield b;
  }
}

async function* asAsync<T>(it: Iterable<T>): AsyncGenerator<T> {
  yield* it;
}

/** Samples RSS while `fn` runs and returns the peak growth over the starting RSS. */
async function peakRssGrowth<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; growth: number; ms: number }> {
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  const t0 = performance.now();
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { result, growth: peak - base, ms: performance.now() - t0 };
  } finally {
    clearInterval(timer);
  }
}

describe("S3 store on MinIO", () => {
  let s3: S3Server;
  let store: ObjectStore;
  let raw: Client;
  const bucket = "abl-e2e";
  before(async () => {
    s3 = await startS3();
    store = createS3Store({
      endpoint: s3.endpoint,
      accessKey: s3.accessKey,
      secretKey: s3.secretKey,
      bucket,
    });
    raw = new Client({
      endPoint: s3.host,
      port: s3.port,
      useSSL: false,
      accessKey: s3.accessKey,
      secretKey: s3.secretKey,
    });
  });
  after(async () => {
    await s3?.stop();
  });

  it("streams a 1 GiB object through with bounded memory and a verified sha256", async (t) => {
    const chunks = 1024;
    const size = chunks * MiB;
    const expected = createHash("sha256");
    const up = await peakRssGrowth(() =>
      store.put("big/one-gib.bin", asAsync(pattern(chunks, MiB, expected)), { size }),
    );
    const want = expected.digest("hex");
    assert.equal(up.result.size, size);
    assert.equal(up.result.sha256, want);
    assert.equal((await store.stat("big/one-gib.bin"))!.sha256, want);

    const down = await peakRssGrowth(async () => {
      const h = createHash("sha256");
      let n = 0;
      // store.get re-hashes and throws IntegrityError at the end on a mismatch.
      for await (const c of store.get("big/one-gib.bin")) {
        h.update(c);
        n += c.byteLength;
      }
      return { n, sha: h.digest("hex") };
    });
    assert.equal(down.result.n, size);
    assert.equal(down.result.sha, want);
    t.diagnostic(
      `1 GiB put ${(up.ms / 1000).toFixed(1)} s (rss +${(up.growth / MiB).toFixed(0)} MiB), get ${(down.ms / 1000).toFixed(1)} s (rss +${(down.growth / MiB).toFixed(0)} MiB)`,
    );
    const limit = 300 * MiB;
    assert.ok(
      up.growth < limit,
      `upload grew RSS by ${(up.growth / MiB).toFixed(0)} MiB (limit 300)`,
    );
    assert.ok(
      down.growth < limit,
      `download grew RSS by ${(down.growth / MiB).toFixed(0)} MiB (limit 300)`,
    );
    await store.delete("big/one-gib.bin");
    assert.equal(await store.stat("big/one-gib.bin"), undefined);
  });

  it("detects an object overwritten behind the store's back", async () => {
    const info = await store.put("c/weights.bin", enc("the real bytes"));
    // Same length, the old digest kept in the metadata: only re-hashing can tell.
    await raw.putObject(bucket, "c/weights.bin", Buffer.from("the fake bytes"), 14, {
      "X-Amz-Meta-sha256": info.sha256,
    });
    await assert.rejects(store.getBytes("c/weights.bin"), (e: unknown) => {
      assert.ok(e instanceof IntegrityError);
      assert.match(
        e.message,
        /is corrupt: read 14 bytes with sha256 [0-9a-f]{64}, recorded sha256/,
      );
      return true;
    });
    // A multipart object as well (several parts on the server).
    const big = await store.put("c/multi.bin", asAsync(pattern(40, MiB)), { size: 40 * MiB });
    const bytes = Buffer.from(await collectBytes(asAsync(pattern(40, MiB))));
    bytes[33 * MiB + 7] = bytes[33 * MiB + 7]! ^ 0x40;
    await raw.putObject(bucket, "c/multi.bin", bytes, bytes.byteLength, {
      "X-Amz-Meta-sha256": big.sha256,
    });
    await assert.rejects(collectBytes(store.get("c/multi.bin")), IntegrityError);
  });

  it("round-trips small and multipart objects, ranges, listing and deletes", async () => {
    await store.put("m/a.json", enc('{"x":1}'), { contentType: "application/json" });
    const multi = await store.put("m/b.bin", asAsync(pattern(20, MiB)), { size: 20 * MiB });
    // Unknown size streams in bounded parts too.
    const unknown = await store.put("m/c.bin", asAsync(pattern(18, MiB)));
    assert.equal(unknown.size, 18 * MiB);
    assert.equal(dec(await store.getBytes("m/a.json")), '{"x":1}');
    const slice = await store.getBytes("m/b.bin", { range: { offset: 3 * MiB, length: 8 } });
    assert.deepEqual([...slice], [3, 0, 0, 0, 3, 3, 3, 3]);
    const tail = await store.getBytes("m/b.bin", { range: { offset: 20 * MiB - 2, length: 100 } });
    assert.equal(tail.byteLength, 2);
    const listed: Array<[string, number]> = [];
    for await (const i of store.list("m/")) listed.push([i.key, i.size]);
    assert.deepEqual(listed, [
      ["m/a.json", 7],
      ["m/b.bin", 20 * MiB],
      ["m/c.bin", 18 * MiB],
    ]);
    assert.equal((await store.stat("m/b.bin"))!.sha256, multi.sha256);
    // No staging leftovers are visible or left behind.
    for await (const i of store.list("")) assert.ok(!i.key.startsWith(".abl"), i.key);
    const rawNames: string[] = [];
    for await (const o of raw.listObjectsV2(bucket, ".abl", true))
      rawNames.push((o as { name: string }).name);
    assert.deepEqual(rawNames, []);
    await store.delete("m/c.bin");
    await store.delete("m/never-existed");
    await assert.rejects(store.getBytes("m/c.bin"), ObjectNotFoundError);
  });

  it("copies big staged uploads to their key in parts, intact", async () => {
    // Lowered thresholds take the multipart-copy path that objects over 5 GiB use.
    const parts = createS3Store({
      endpoint: s3.endpoint,
      accessKey: s3.accessKey,
      secretKey: s3.secretKey,
      bucket,
      maxSingleCopyBytes: 8 * MiB,
      copyPartBytes: 5 * MiB,
    });
    const expected = createHash("sha256");
    const info = await parts.put("cp/parts.bin", asAsync(pattern(23, MiB, expected)));
    assert.equal(info.sha256, expected.digest("hex"));
    const back = createHash("sha256")
      .update(await parts.getBytes("cp/parts.bin"))
      .digest("hex");
    assert.equal(back, info.sha256);
    assert.equal((await store.stat("cp/parts.bin"))!.sha256, info.sha256);
  });

  it("keeps failed writes and artifacts without a manifest invisible", async () => {
    async function* dies(): AsyncGenerator<Uint8Array> {
      yield* pattern(20, MiB);
      throw new Error("writer died mid-file");
    }
    await assert.rejects(
      store.put("a/half.bin", dies(), { size: 40 * MiB }),
      /writer died mid-file/,
    );
    assert.equal(await store.stat("a/half.bin"), undefined);

    const w = createArtifactWriter(store, "directions/dead-writer");
    await w.addFile("direction.safetensors", enc("abc"));
    // The writer dies here, before commit.
    await publishArtifact(
      store,
      "directions/complete",
      [{ name: "direction.safetensors", body: enc("xyz") }],
      { layer: 3 },
    );
    assert.equal(await readArtifact(store, "directions/dead-writer"), undefined);
    assert.equal(await artifactExists(store, "directions/dead-writer"), false);
    const visible: string[] = [];
    for await (const p of listArtifacts(store, "directions/")) visible.push(p);
    assert.deepEqual(visible, ["directions/complete"]);
    const m = await readArtifact(store, "directions/complete");
    assert.deepEqual(m!.meta, { layer: 3 });
    assert.equal(
      dec(
        await collectBytes(readArtifactFile(store, "directions/complete", "direction.safetensors")),
      ),
      "xyz",
    );
  });

  it("presigns GET and PUT URLs", async () => {
    await store.put("p/get.txt", enc("presigned body"));
    const getUrl = await store.presignGet!("p/get.txt", 300);
    const res = await fetch(getUrl);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "presigned body");
    const putUrl = await store.presignPut!("p/put.txt", 300);
    const up = await fetch(putUrl, { method: "PUT", body: "uploaded by a pod" });
    assert.equal(up.status, 200);
    const st = await store.stat("p/put.txt");
    assert.equal(st!.size, 17);
    assert.equal(st!.sha256, "", "no digest recorded for a presigned upload");
    assert.equal(dec(await store.getBytes("p/put.txt")), "uploaded by a pod");
    await assert.rejects(
      store.presignGet!("p/get.txt", 8 * 24 * 3600),
      /presign expiry must be 1..604800 seconds/,
    );
  });

  it("rejects malformed keys, path escapes, unknown and invalid buckets", async () => {
    for (const key of [
      "../escape",
      "a/../../b",
      "/abs",
      "a//b",
      "",
      "white space",
      ".abl-staging/x",
    ]) {
      await assert.rejects(store.put(key, enc("x")), InvalidKeyError, JSON.stringify(key));
      await assert.rejects(store.stat(key), InvalidKeyError);
    }
    const missing = createS3Store({
      endpoint: s3.endpoint,
      accessKey: s3.accessKey,
      secretKey: s3.secretKey,
      bucket: "no-such-bucket",
      createBucket: false,
    });
    await assert.rejects(missing.stat("x"), (e: unknown) => {
      assert.ok(e instanceof BucketNotFoundError);
      assert.match(e.message, /S3 bucket "no-such-bucket" does not exist/);
      return true;
    });
    assert.throws(
      () =>
        createS3Store({
          endpoint: s3.endpoint,
          accessKey: "a",
          secretKey: "b",
          bucket: "Bad_Bucket",
        }),
      (e: unknown) =>
        e instanceof StoreError && /bucket name "Bad_Bucket" is invalid/.test(e.message),
    );
    assert.throws(
      () => createS3Store({ endpoint: "not a url", accessKey: "a", secretKey: "b", bucket: "abc" }),
      /not a URL/,
    );
    // A second store with a key prefix sees only its own objects.
    const scoped = createS3Store({
      endpoint: s3.endpoint,
      accessKey: s3.accessKey,
      secretKey: s3.secretKey,
      bucket,
      prefix: "tenant-a",
    });
    await scoped.put("x.txt", enc("scoped"));
    const keys: string[] = [];
    for await (const i of scoped.list("")) keys.push(i.key);
    assert.deepEqual(keys, ["x.txt"]);
    assert.equal((await store.stat("tenant-a/x.txt"))!.size, 6);
  });
});
