import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidKeyError, StoreError } from "./errors.ts";
import { joinKey, validateKey } from "./keys.ts";
import { canonicalJson, sha256Hex, stepKey } from "./step-key.ts";
import { parseStoreUrl, s3FromEnv } from "./store-url.ts";

describe("canonical JSON and step keys", () => {
  it("sorts keys, drops undefined members and writes numbers canonically", () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [1, undefined, -0], c: "x" }, u: undefined }),
      '{"a":{"c":"x","d":[1,null,0]},"b":1}',
    );
    assert.equal(canonicalJson({ n: 1e21, f: 0.1, i: 10.0 }), '{"f":0.1,"i":10,"n":1e+21}');
    assert.equal(canonicalJson(new Uint8Array([1, 255])), '"01ff"');
  });

  it("gives the same key for the same inputs in any order, and another for any change", () => {
    const a = stepKey("directions", { layers: [3, 4], model: "m@sha", opts: { x: 1, y: 2 } });
    const b = stepKey("directions", { opts: { y: 2, x: 1 }, model: "m@sha", layers: [3, 4] });
    assert.equal(a, b);
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.equal(
      a,
      sha256Hex(
        '{"kind":"directions","params":{"layers":[3,4],"model":"m@sha","opts":{"x":1,"y":2}}}',
      ),
    );
    assert.notEqual(
      a,
      stepKey("directions", { layers: [4, 3], model: "m@sha", opts: { x: 1, y: 2 } }),
    );
    assert.notEqual(
      a,
      stepKey("capture", { layers: [3, 4], model: "m@sha", opts: { x: 1, y: 2 } }),
    );
  });

  it("rejects values without a stable JSON form", () => {
    assert.throws(() => canonicalJson({ x: Number.NaN }), /\$\.x is NaN/);
    assert.throws(() => canonicalJson({ x: 1n }), /bigint/);
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    assert.throws(() => canonicalJson(cyc), StoreError);
    assert.throws(() => stepKey("", {}), StoreError);
  });
});

describe("keys and store URLs", () => {
  it("accepts HF-style keys and rejects escapes", () => {
    assert.equal(validateKey("models/abc/.gitattributes"), "models/abc/.gitattributes");
    assert.equal(joinKey("a", "", "b/c"), "a/b/c");
    assert.throws(
      () => validateKey("a/../b"),
      (e: unknown) => e instanceof InvalidKeyError && /path escape/.test(e.message),
    );
    assert.throws(() => validateKey("x".repeat(1000)), /1000 bytes, over the 900-byte limit/);
  });

  it("parses s3, file and path URLs", () => {
    assert.deepEqual(parseStoreUrl("s3://bucket/some/prefix/"), {
      kind: "s3",
      bucket: "bucket",
      prefix: "some/prefix",
    });
    assert.deepEqual(parseStoreUrl("s3://bucket"), { kind: "s3", bucket: "bucket", prefix: "" });
    assert.deepEqual(parseStoreUrl("file:///data/abl"), { kind: "local", root: "/data/abl" });
    assert.deepEqual(parseStoreUrl("/data/abl"), { kind: "local", root: "/data/abl" });
    assert.throws(() => parseStoreUrl("gs://x"), /unsupported scheme/);
    assert.throws(() => parseStoreUrl("s3://"), /no bucket/);
  });

  it("reads S3 settings from ABL_S3_* or AWS_* variables, only when complete", () => {
    const abl = {
      ABL_S3_ENDPOINT: "http://m:9000",
      ABL_S3_ACCESS_KEY: "a",
      ABL_S3_SECRET_KEY: "s",
    };
    assert.deepEqual(s3FromEnv(abl), {
      endpoint: "http://m:9000",
      accessKey: "a",
      secretKey: "s",
      region: "us-east-1",
    });
    assert.deepEqual(
      s3FromEnv({
        AWS_ENDPOINT_URL: "http://aws",
        AWS_ACCESS_KEY_ID: "k",
        AWS_SECRET_ACCESS_KEY: "x",
        AWS_DEFAULT_REGION: "eu-west-1",
        ABL_S3_ACCESS_KEY: "wins",
      }),
      { endpoint: "http://aws", accessKey: "wins", secretKey: "x", region: "eu-west-1" },
    );
    assert.equal(s3FromEnv({ ...abl, ABL_S3_SECRET_KEY: "" }), undefined);
    assert.equal(s3FromEnv({}), undefined);
  });
});
