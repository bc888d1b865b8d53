import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { createLocalOutput, DIRECT_ALIGN, DIRECT_PIECE_BYTES } from "./output.ts";

let root = "";
before(async () => {
  root = await mkdtemp(join(tmpdir(), "abl-output-"));
});
after(() => rm(root, { recursive: true, force: true }));

/** Deterministic bytes that differ at every offset a misplaced write could hit. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

for (const directIo of [true, false]) {
  it(`positional writes at unaligned offsets, out of order and concurrent, land exactly (direct I/O ${directIo ? "on" : "off"})`, async () => {
    // Two files: one with pieces straddling page and direct-piece boundaries, one below the
    // direct-write threshold.
    const size = 2 * DIRECT_PIECE_BYTES + 3 * DIRECT_ALIGN + 777;
    const want = pattern(size, 7);
    const small = pattern(12_345, 9);
    const dir = join(root, `out-${directIo}`);
    const out = await createLocalOutput(dir, { directIo });
    const sink = await out.file("model.safetensors", size);
    // Cut points at odd offsets; the header-like head goes through write(), the rest through
    // writeAt() two at a time, later pieces first.
    const cuts = [
      0,
      8,
      4103,
      DIRECT_ALIGN * 5 + 1,
      DIRECT_PIECE_BYTES - 3,
      DIRECT_PIECE_BYTES + 65_537,
      size,
    ];
    await sink.write(want.subarray(0, 8));
    const pieces = cuts.slice(1, -1).map((c, i) => [c, cuts[i + 2] as number] as const);
    for (let i = pieces.length - 1; i >= 0; i -= 2) {
      const [a, b] = pieces[i] as readonly [number, number];
      const second = pieces[i - 1];
      await Promise.all([
        sink.writeAt?.(want.subarray(a, b), a),
        second ? sink.writeAt?.(want.subarray(second[0], second[1]), second[0]) : undefined,
      ]);
    }
    await sink.commit();
    const s = await out.file("tokenizer.json", small.byteLength);
    await s.write(small);
    await s.commit();
    await out.publish({});
    assert.deepEqual((await readdir(dir)).sort(), ["model.safetensors", "tokenizer.json"]);
    assert.ok(Buffer.from(want).equals(await readFile(join(dir, "model.safetensors"))));
    assert.ok(Buffer.from(small).equals(await readFile(join(dir, "tokenizer.json"))));
  });
}

it("an aborted output leaves nothing, direct writes included", async () => {
  const dir = join(root, "aborted");
  const out = await createLocalOutput(dir);
  const sink = await out.file("model.safetensors", 2 * DIRECT_PIECE_BYTES);
  await sink.writeAt?.(pattern(DIRECT_PIECE_BYTES, 3), 0);
  await sink.abort();
  await out.abort();
  assert.deepEqual(
    (await readdir(root)).filter((n) => n.includes("aborted")),
    [],
  );
});
