import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { ByteSink } from "./byte-sink.ts";
import { memorySource } from "./byte-source.ts";
import { SafetensorsError } from "./errors.ts";
import { openSafetensors, readSafetensors } from "./safetensors-reader.ts";
import {
  createSafetensorsWriter,
  encodeSafetensorsHeader,
  writeSafetensors,
} from "./safetensors-writer.ts";
import { encodeShardIndex, openShardedSafetensors } from "./shard-index.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "abl-tensor-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Hand-builds a file from a header object and a data length. */
function rawFile(header: unknown, dataBytes: number, declaredLength?: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? json.byteLength), true);
  out.set(json, 8);
  return out;
}

async function headerError(bytes: Uint8Array): Promise<string> {
  const err = await openSafetensors(memorySource(bytes, "x.safetensors")).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof SafetensorsError, `expected SafetensorsError, got ${String(err)}`);
  return err.message;
}

test("write then read back: shapes, dtypes, metadata, values", async () => {
  const path = join(dir, "a.safetensors");
  const w = new Float32Array([1, -2, 3.5, 0.1, 7, 8]);
  await writeSafetensors(
    path,
    {
      w: { shape: [2, 3], data: w },
      h: { shape: [6], dtype: "BF16", data: w },
      ids: { shape: [2], dtype: "I64", data: new Uint8Array(16).fill(1) },
    },
    { format: "pt" },
  );
  assert.deepEqual(
    (await readdir(dir)).filter((f) => f.includes("tmp")),
    [],
  );
  const f = await readSafetensors(path);
  try {
    assert.deepEqual(f.names, ["w", "h", "ids"]);
    assert.deepEqual(f.header.metadata, { format: "pt" });
    assert.equal(f.header.dataStart % 8, 0);
    assert.deepEqual([...(await f.tensor("w"))], [...w]);
    const h = await f.tensor("h");
    assert.equal(h[3], 0.10009765625); // 0.1 rounded to bf16
    assert.deepEqual((await f.decoded("w")).shape, [2, 3]);
    assert.deepEqual([...(await f.bytes("ids"))], new Array(16).fill(1));
    await assert.rejects(f.tensor("ids"), /only F32, F16 and BF16/);
    await assert.rejects(f.tensor("nope"), /no tensor named "nope"/);
  } finally {
    await f.close();
  }
});

test("bad headers are rejected with the numbers", async () => {
  const good = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
  assert.equal((await openSafetensors(memorySource(rawFile(good, 8)))).names[0], "a");
  assert.match(await headerError(rawFile(good, 4)), /need 8 data bytes but the file holds 4/);
  assert.match(
    await headerError(rawFile(good, 8, 10_000)),
    /header length 10000 runs beyond the end of the \d+-byte file/,
  );
  assert.match(await headerError(rawFile(good, 8, 2 ** 40)), /exceeds the 104857600-byte limit/);
  assert.match(await headerError(new Uint8Array(5)), /shorter than the 8-byte header prefix/);
  assert.match(
    await headerError(rawFile({ a: { dtype: "Q4", shape: [2], data_offsets: [0, 8] } }, 8)),
    /unknown dtype "Q4"/,
  );
  assert.match(
    await headerError(rawFile({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, 8)),
    /needs 12/,
  );
  assert.match(
    await headerError(
      rawFile(
        {
          a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        },
        12,
      ),
    ),
    /overlap the previous tensor, which ends at 8/,
  );
  assert.match(
    await headerError(rawFile({ a: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, 8)),
    /end before they begin/,
  );
  assert.match(
    await headerError(rawFile({ a: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, 12)),
    /leave a gap after byte 0/,
  );
  assert.match(
    await headerError(
      rawFile({ a: { dtype: "F32", shape: [1, 1, 1, 1, 1, 1, 1, 1, 1], data_offsets: [0, 4] } }, 4),
    ),
    /rank 9 exceeds/,
  );
  assert.match(
    await headerError(
      rawFile({ ["n".repeat(2000)]: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, 4),
    ),
    /2000 characters exceeds the 1024 limit/,
  );
  assert.match(await headerError(rawFile(good, 12)), /4 bytes after the last tensor/);
  assert.match(await headerError(rawFile([1, 2], 0)), /not a JSON object/);
});

test("encoded headers are padded and self-consistent", () => {
  const h = encodeSafetensorsHeader([{ name: "x", dtype: "BF16", shape: [3] }]);
  assert.equal((h.bytes.byteLength - 8) % 8, 0);
  assert.equal(h.fileSize, h.bytes.byteLength + 6);
  assert.throws(
    () =>
      encodeSafetensorsHeader([
        { name: "x", dtype: "F32", shape: [1] },
        { name: "x", dtype: "F32", shape: [1] },
      ]),
    /listed twice/,
  );
});

test("F32 from memory: a view when 4-byte aligned, a copy when not", async () => {
  const path = join(dir, "view.safetensors");
  await writeSafetensors(path, {
    a: { shape: [3], data: new Float32Array([1, 2, 3]) },
    h: { shape: [2], dtype: "BF16", data: new Float32Array([0.5, -4]) },
  });
  const bytes = new Uint8Array(await readFile(path));
  const aligned = await openSafetensors(memorySource(bytes));
  const a = await aligned.tensor("a");
  assert.deepEqual([...a], [1, 2, 3]);
  assert.equal(a.buffer, bytes.buffer);
  assert.deepEqual([...(await aligned.tensor("h"))], [0.5, -4]);
  // The same file one byte into a larger buffer: its data is no longer 4-byte aligned.
  const shifted = new Uint8Array(bytes.byteLength + 1);
  shifted.set(bytes, 1);
  const b = await (await openSafetensors(memorySource(shifted.subarray(1)))).tensor("a");
  assert.deepEqual([...b], [1, 2, 3]);
  assert.notEqual(b.buffer, shifted.buffer);
});

test("sharded folders: index and shards must agree", async () => {
  const ck = join(dir, "ck");
  await rm(ck, { recursive: true, force: true });
  await import("node:fs/promises").then((fs) => fs.mkdir(ck));
  await writeSafetensors(join(ck, "model-00001-of-00002.safetensors"), {
    a: { shape: [2], data: new Float32Array([1, 2]) },
  });
  await writeSafetensors(join(ck, "model-00002-of-00002.safetensors"), {
    b: { shape: [1], data: new Float32Array([3]) },
  });
  const map = new Map([
    ["a", "model-00001-of-00002.safetensors"],
    ["b", "model-00002-of-00002.safetensors"],
  ]);
  await writeFile(join(ck, "model.safetensors.index.json"), encodeShardIndex(map, 12));
  const s = await openShardedSafetensors(ck);
  assert.deepEqual([...(await s.tensor("b"))], [3]);
  assert.equal(s.tensors.get("a")?.file, "model-00001-of-00002.safetensors");
  await s.close();

  map.set("c", "model-00003-of-00003.safetensors");
  await writeFile(join(ck, "model.safetensors.index.json"), encodeShardIndex(map, 12));
  await assert.rejects(
    openShardedSafetensors(ck),
    /index names shard "model-00003-of-00003.safetensors", which is missing/,
  );
  map.set("c", "model-00002-of-00002.safetensors");
  await writeFile(join(ck, "model.safetensors.index.json"), encodeShardIndex(map, 12));
  await assert.rejects(
    openShardedSafetensors(ck),
    /maps "c" to model-00002-of-00002.safetensors, but that shard has no such tensor/,
  );

  // The same folder held in memory (a download): nothing is read from the disk, F32 tensors
  // are views of the held bytes, and the index is checked the same way.
  map.delete("c");
  const held = new Map<string, Uint8Array>();
  for (const name of await readdir(ck)) held.set(name, await readFile(join(ck, name)));
  held.set("model.safetensors.index.json", new TextEncoder().encode(encodeShardIndex(map, 12)));
  const m = await openShardedSafetensors(join(dir, "not-there"), undefined, held);
  const b = await m.tensor("b");
  assert.deepEqual([...b], [3]);
  const shard2 = held.get("model-00002-of-00002.safetensors") as Uint8Array;
  assert.equal(b.buffer, shard2.buffer, "an aligned F32 tensor is a view, not a copy");
  await m.close();
  held.set(
    "model.safetensors.index.json",
    new TextEncoder().encode(encodeShardIndex(new Map([["a", "x.safetensors"]]), 8)),
  );
  await assert.rejects(
    openShardedSafetensors(join(dir, "not-there"), undefined, held),
    /index names shard "x.safetensors", which is missing/,
  );
  await writeFile(
    join(ck, "model.safetensors.index.json"),
    JSON.stringify({ weight_map: { a: "../x.safetensors" } }),
  );
  await assert.rejects(openShardedSafetensors(ck), /not a plain .safetensors file name/);
  assert.ok((await readFile(join(ck, "model-00001-of-00002.safetensors"))).byteLength > 0);
});

test("claimed positional writes land in place, in any order; misuse is refused", async () => {
  const file = new Uint8Array(1024);
  let committed = false;
  const sink: ByteSink = {
    name: "<positional>",
    written: 0,
    async write(chunk) {
      file.set(chunk, 0);
    },
    async writeAt(chunk, position) {
      file.set(chunk, position);
    },
    async commit() {
      committed = true;
    },
    async abort() {},
  };
  const specs = [
    { name: "a", dtype: "U8" as const, shape: [4] },
    { name: "b", dtype: "U8" as const, shape: [4] },
  ];
  const w = await createSafetensorsWriter(sink, specs);
  const start = w.header.bytes.byteLength;
  const first = w.claim!(4);
  const second = w.claim!(4);
  assert.throws(() => w.claim!(1), /exceed the 8 data bytes/);
  await second(Uint8Array.of(5, 6, 7, 8));
  await assert.rejects(w.finish(), /1 claimed writes did not finish/);
  assert.equal(committed, false);
  await assert.rejects(first(Uint8Array.of(1, 2)), /claim of 4 bytes .* with 2 bytes/);
  await first(Uint8Array.of(1, 2, 3, 4));
  await assert.rejects(first(Uint8Array.of(1, 2, 3, 4)), /written twice/);
  assert.deepEqual([...file.subarray(start, start + 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
  const s = await openSafetensors(memorySource(file.subarray(0, w.header.fileSize)));
  assert.deepEqual([...(await s.bytes("b"))], [5, 6, 7, 8]);
});
