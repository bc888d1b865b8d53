import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { dequantizeGgml } from "./gguf-dequantize.ts";
import {
  assertGgufTensorSupported,
  GgufFormatError,
  GgufUnsupportedTypeError,
  readGgufHeader,
  readGgufTensorBytes,
} from "./gguf-reader.ts";

const FIXTURES = new URL("../fixtures/gguf/", import.meta.url).pathname;
const ALL_TYPES = join(FIXTURES, "all-types.gguf");

interface ExpectedIndex {
  tensors: { name: string; type: string; shape: number[]; offset: number; count: number }[];
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "abl-gguf-reader-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes a modified copy of the all-types fixture and returns its path. */
async function patched(name: string, edit: (b: Buffer) => Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, edit(Buffer.from(await readFile(ALL_TYPES))));
  return path;
}

/** Byte offset just past the GGUF string `s` (u64 length + bytes) in `b`. */
function find(b: Buffer, s: string): number {
  const bytes = Buffer.from(s, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(bytes.length));
  const at = b.indexOf(Buffer.concat([len, bytes]));
  assert.ok(at >= 0, `fixture lacks ${s}`);
  return at + 8 + bytes.length;
}

describe("readGgufHeader", () => {
  it("reads every metadata value type", async () => {
    const h = await readGgufHeader(ALL_TYPES);
    assert.equal(h.version, 3);
    const m = h.metadata;
    assert.equal(m.get("test.u8"), 200);
    assert.equal(m.get("test.i8"), -100);
    assert.equal(m.get("test.u16"), 60000);
    assert.equal(m.get("test.i16"), -30000);
    assert.equal(m.get("test.u32"), 4000000000);
    assert.equal(m.get("test.i32"), -2000000000);
    assert.equal(m.get("test.f32"), 1.5);
    assert.equal(m.get("test.bool"), true);
    assert.equal(m.get("test.string"), "héllo ✓");
    assert.equal(m.get("test.u64"), 2n ** 60n + 3n);
    assert.equal(m.get("test.i64"), -(2 ** 40));
    assert.equal(m.get("test.f64"), Math.E);
    assert.deepEqual(m.get("test.array_i32"), [1, -2, 3]);
    assert.deepEqual(m.get("test.array_str"), ["a", "", "ζ"]);
    assert.deepEqual(m.get("test.array_nested"), [[1, 2], [3]]);
    assert.equal(m.get("general.architecture"), "llama");
    assert.equal(h.alignment, 32);
    assert.equal(h.dataOffset % 32, 0);
  });

  it("dequantizes every supported type exactly as the gguf package does", async () => {
    const h = await readGgufHeader(ALL_TYPES);
    const index = JSON.parse(
      await readFile(join(FIXTURES, "all-types.expected.json"), "utf8"),
    ) as ExpectedIndex;
    const bin = await readFile(join(FIXTURES, "all-types.expected.bin"));
    assert.equal(index.tensors.length, 13);
    const { open } = await import("node:fs/promises");
    const fh = await open(ALL_TYPES, "r");
    try {
      for (const e of index.tensors) {
        const t = h.tensors.find((x) => x.name === e.name);
        assert.ok(t, `tensor ${e.name} missing`);
        assert.equal(t.type.name, e.type);
        assert.deepEqual([...t.dims].reverse(), e.shape);
        const got = dequantizeGgml(t.type.name, await readGgufTensorBytes(fh, t), t.elements);
        const want = new Float32Array(
          bin.buffer.slice(bin.byteOffset + e.offset, bin.byteOffset + e.offset + e.count * 4),
        );
        assert.equal(got.length, want.length);
        // Bit-exact: compare the raw f32 words.
        const gw = new Uint32Array(got.buffer);
        const ww = new Uint32Array(want.buffer);
        let mismatches = 0;
        for (let i = 0; i < gw.length; i++) if (gw[i] !== ww[i]) mismatches++;
        assert.equal(
          mismatches,
          0,
          `${e.name} (${e.type}): ${mismatches} of ${gw.length} values differ`,
        );
      }
    } finally {
      await fh.close();
    }
  });

  it("accepts version 2", async () => {
    const path = await patched("v2.gguf", (b) => {
      b.writeUInt32LE(2, 4);
      return b;
    });
    assert.equal((await readGgufHeader(path)).version, 2);
  });

  it("rejects a bad magic", async () => {
    const path = await patched("magic.gguf", (b) => {
      b.write("GGML", 0, "latin1");
      return b;
    });
    await assert.rejects(
      readGgufHeader(path),
      (e: unknown) => e instanceof GgufFormatError && /bad magic/.test(e.message),
    );
  });

  it("names big-endian files", async () => {
    const path = await patched("be.gguf", (b) => {
      b.writeUInt32BE(3, 4);
      return b;
    });
    await assert.rejects(readGgufHeader(path), /big-endian GGUF files are not supported/);
  });

  it("rejects an unsupported version", async () => {
    const path = await patched("v9.gguf", (b) => {
      b.writeUInt32LE(9, 4);
      return b;
    });
    await assert.rejects(readGgufHeader(path), /GGUF version 9 is not supported/);
  });

  it("rejects tensor data out of bounds (truncated data section)", async () => {
    const path = await patched("short.gguf", (b) => b.subarray(0, b.length - 100));
    await assert.rejects(
      readGgufHeader(path),
      (e: unknown) =>
        e instanceof GgufFormatError &&
        /data out of bounds/.test(e.message) &&
        /file has \d+ bytes/.test(e.message),
    );
  });

  it("rejects a truncated header", async () => {
    const path = await patched("header.gguf", (b) => b.subarray(0, 200));
    await assert.rejects(readGgufHeader(path), /file truncated/);
  });

  it("rejects an unknown quantization type", async () => {
    const path = await patched("qtype.gguf", (b) => {
      // tensor info for "t.f32": name, u32 n_dims, 2 × u64 dims, then the u32 type.
      const at = find(b, "t.f32") + 4 + 16;
      assert.equal(b.readUInt32LE(at), 0);
      b.writeUInt32LE(99, at);
      return b;
    });
    await assert.rejects(
      readGgufHeader(path),
      (e: unknown) =>
        e instanceof GgufFormatError && /unknown quantization type 99/.test(e.message),
    );
  });

  it("names a known but unsupported type when asked to convert it", async () => {
    const path = await patched("iq4nl.gguf", (b) => {
      const at = find(b, "t.q4_0") + 4 + 16;
      assert.equal(b.readUInt32LE(at), 2);
      b.writeUInt32LE(20, at); // IQ4_NL: same 18-byte blocks of 32 as Q4_0, so the layout stays valid
      return b;
    });
    const h = await readGgufHeader(path);
    const t = h.tensors.find((x) => x.name === "t.q4_0");
    assert.ok(t);
    assert.throws(() => assertGgufTensorSupported(t), GgufUnsupportedTypeError);
    assert.throws(() => assertGgufTensorSupported(t), /IQ4_NL \(20\).*supported: F32, F16, Q4_0/);
  });

  it("rejects counts beyond the limits", async () => {
    const path = await patched("count.gguf", (b) => {
      b.writeBigUInt64LE(2n ** 40n, 8); // tensor count
      return b;
    });
    await assert.rejects(readGgufHeader(path), /tensor count 1099511627776 exceeds the limit/);
    const path2 = await patched("array.gguf", (b) => {
      // test.array_i32: key, u32 type ARRAY, u32 item type, u64 length.
      const at = find(b, "test.array_i32") + 8;
      assert.equal(b.readBigUInt64LE(at), 3n);
      b.writeBigUInt64LE(2n ** 33n, at);
      return b;
    });
    await assert.rejects(readGgufHeader(path2), /array length 8589934592 exceeds the limit/);
  });
});
