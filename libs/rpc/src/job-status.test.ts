import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { JobState, JobStatusSchema } from "./gen/abliterate/v1/common_pb.ts";
import { type JobRecordFields, jobStatus, requireJobRecord } from "./job-status.ts";
import { RpcError } from "./status.ts";

const KIND = { step: "patch", unit: "bytes" };
const KEY = "b".repeat(64);

const record: JobRecordFields = {
  state: "failed",
  stepKey: KEY,
  cached: false,
  done: 1234.6,
  total: -5,
  message: "writing shards",
  error: { code: "INTERNAL", message: "disk full" },
  createdAt: "2026-11-30T10:00:00.000Z",
  updatedAt: "2026-11-30T10:05:00.000Z",
};

test("jobStatus: the wire status and progress of a job record", () => {
  const s = create(JobStatusSchema, jobStatus(KIND, KEY, record));
  assert.equal(s.jobId, KEY);
  assert.equal(s.stepKey, KEY);
  assert.equal(s.state, JobState.FAILED);
  assert.equal(s.error?.message, "disk full");
  assert.equal(timestampDate(s.createdAt!).toISOString(), record.createdAt);
  const p = s.progress!;
  assert.deepEqual([p.step, p.unit, p.done, p.total], ["patch", "bytes", 1235n, 0n]);
  assert.equal(p.state, JobState.FAILED);
  assert.equal(timestampDate(p.timestamp!).toISOString(), record.updatedAt);
  const ok = create(
    JobStatusSchema,
    jobStatus(KIND, KEY, { ...record, state: "succeeded", error: undefined }),
  );
  assert.equal(ok.error, undefined);
});

test("requireJobRecord: INVALID_ARGUMENT for a malformed id, NOT_FOUND for an unknown job", async () => {
  const get = async (id: string) => (id === KEY ? record : undefined);
  assert.equal(await requireJobRecord(KIND, KEY, get), record);
  await assert.rejects(requireJobRecord(KIND, "nope", get), (e: unknown) => {
    assert.ok(e instanceof RpcError);
    assert.equal(e.code, "INVALID_ARGUMENT");
    assert.match(e.message, /job id "nope" is not a step key/);
    return true;
  });
  await assert.rejects(requireJobRecord(KIND, "c".repeat(64), get), (e: unknown) => {
    assert.ok(e instanceof RpcError);
    assert.equal(e.code, "NOT_FOUND");
    assert.match(e.message, /no patch job c{64}/);
    return true;
  });
});
