import assert from "node:assert/strict";
import { test } from "node:test";
import { bf16ToF32, decodeToF32, encodeFromF32, f16ToF32, f32ToBf16, f32ToF16 } from "./dtype.ts";

test("bf16 rounds to nearest even and keeps NaN and Inf", () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties to even (1).
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80);
  // 1 + 3·2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6 (even): rounds up.
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82);
  assert.equal(f32ToBf16(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.equal(f32ToBf16(Number.POSITIVE_INFINITY), 0x7f80);
  assert.equal(f32ToBf16(Number.NEGATIVE_INFINITY), 0xff80);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(Number.NaN))));
  // The largest f32 rounds to Inf in bf16.
  assert.equal(f32ToBf16(3.4028234663852886e38), 0x7f80);
  assert.equal(bf16ToF32(0xc040), -3);
});

test("f16 round trip, ties to even, subnormals, overflow", () => {
  for (const v of [0, -0, 1, -2.5, 65504, 6.103515625e-5, 2 ** -24, 0.333251953125]) {
    assert.equal(f16ToF32(f32ToF16(v)), v, `value ${v}`);
  }
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie → even
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
  assert.equal(f32ToF16(65520), 0x7c00); // rounds past max to Inf
  assert.equal(f32ToF16(2 ** -25), 0x0000); // half the smallest subnormal ties to 0
  assert.equal(f32ToF16(2 ** -25 * 1.5), 0x0001);
  assert.ok(Number.isNaN(f16ToF32(f32ToF16(Number.NaN))));
  assert.equal(f16ToF32(0xfc00), Number.NEGATIVE_INFINITY);
});

test("bulk codecs agree with the scalar ones", () => {
  const src = new Float32Array([
    0.1,
    -7.25,
    1e-30,
    3e38,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    1 + 2 ** -8,
  ]);
  for (const dtype of ["BF16", "F16", "F32"] as const) {
    const bytes = new Uint8Array(src.length * (dtype === "F32" ? 4 : 2));
    encodeFromF32(dtype, src, bytes);
    const back = new Float32Array(src.length);
    decodeToF32(dtype, bytes, back);
    for (let i = 0; i < src.length; i++) {
      const want =
        dtype === "BF16"
          ? bf16ToF32(f32ToBf16(src[i]!))
          : dtype === "F16"
            ? f16ToF32(f32ToF16(src[i]!))
            : src[i]!;
      assert.ok(
        Object.is(back[i], want) || (Number.isNaN(back[i]!) && Number.isNaN(want)),
        `${dtype} ${i}`,
      );
    }
  }
});
