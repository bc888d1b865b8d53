import assert from "node:assert/strict";
import { test } from "node:test";
import { Metadata } from "@grpc/grpc-js";
import {
  Code,
  codeName,
  ERROR_DETAIL_TRAILER,
  fromServiceError,
  RpcError,
  toGrpcStatus,
} from "./status.ts";

class BucketNotFoundError extends Error {
  override name = "BucketNotFoundError";
}
class SpecError extends Error {
  override name = "SpecError";
}
class StoreError extends Error {
  override name = "StoreError";
}
class IntegrityError extends StoreError {
  override name = "IntegrityError";
}

test("named lib errors map by class name and keep their one-line message", () => {
  const cases: Array<[Error, number]> = [
    [new BucketNotFoundError("bucket abl does not exist"), Code.NOT_FOUND],
    [new SpecError("sweep.variants[2].scale must be > 0, got -1"), Code.INVALID_ARGUMENT],
    [Object.assign(new Error("x"), { name: "AlreadyExistsError" }), Code.ALREADY_EXISTS],
    [Object.assign(new Error("x"), { name: "RevisionConflictError" }), Code.FAILED_PRECONDITION],
    [Object.assign(new Error("x"), { name: "MessageTooLargeError" }), Code.RESOURCE_EXHAUSTED],
    [Object.assign(new Error("x"), { name: "TimeoutError" }), Code.DEADLINE_EXCEEDED],
    [Object.assign(new Error("x"), { name: "AbortError" }), Code.CANCELLED],
  ];
  for (const [err, code] of cases) {
    const status = toGrpcStatus(err);
    assert.equal(status.code, code, err.name);
    assert.equal(status.details, err.message);
  }
  assert.equal(
    toGrpcStatus(new SpecError("line one\n    at secret stack frame")).details,
    "line one",
  );
});

test("unknown errors become INTERNAL with a generic message", () => {
  for (const err of [
    new Error("ECONNREFUSED 10.0.0.7:9000"),
    new IntegrityError("sha mismatch"),
    "str",
    42,
    null,
  ]) {
    const status = toGrpcStatus(err);
    assert.equal(status.code, Code.INTERNAL);
    assert.equal(status.details, "internal error");
  }
});

test("explicit errorCodes win and cover subclasses; INTERNAL mapping hides the message", () => {
  const opts = { errorCodes: { StoreError: "UNAVAILABLE", SpecError: "INTERNAL" } as const };
  assert.equal(toGrpcStatus(new IntegrityError("sha mismatch"), opts).code, Code.UNAVAILABLE);
  const hidden = toGrpcStatus(new SpecError("secret detail"), opts);
  assert.equal(hidden.code, Code.INTERNAL);
  assert.equal(hidden.details, "internal error");
});

test("RpcError fields round-trip through the error-detail trailer", () => {
  const status = toGrpcStatus(
    new RpcError("INVALID_ARGUMENT", "bad", { fields: { layer: "must be <= 28, got 40" } }),
  );
  assert.equal(status.code, Code.INVALID_ARGUMENT);
  assert.equal(status.metadata.get(ERROR_DETAIL_TRAILER).length, 1);
  const clientErr = Object.assign(new Error("3 INVALID_ARGUMENT: bad"), {
    code: status.code,
    details: status.details,
    metadata: status.metadata,
  });
  const back = fromServiceError(clientErr);
  assert.equal(back.code, "INVALID_ARGUMENT");
  assert.equal(back.message, "bad");
  assert.deepEqual(back.fields, { layer: "must be <= 28, got 40" });
  const garbled = new Metadata();
  garbled.set(ERROR_DETAIL_TRAILER, Buffer.from([0xff, 0xff, 0xff]));
  const noFields = fromServiceError(
    Object.assign(new Error("x"), { code: 5, details: "gone", metadata: garbled }),
  );
  assert.equal(noFields.code, "NOT_FOUND");
  assert.deepEqual(noFields.fields, {});
});

test("codeName covers the protocol and falls back to UNKNOWN", () => {
  assert.equal(codeName(0), "OK");
  assert.equal(codeName(16), "UNAUTHENTICATED");
  assert.equal(codeName(99), "UNKNOWN");
});
