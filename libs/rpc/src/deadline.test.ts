import assert from "node:assert/strict";
import { test } from "node:test";
import { cancelCause, DEADLINE_SLACK_MS, deadlineMs } from "./deadline.ts";

test("a cancel near or after the deadline counts as the deadline; earlier ones as the client's", () => {
  const deadline = 1_000_000;
  assert.equal(cancelCause(undefined, deadline), "CANCELLED");
  assert.equal(cancelCause(deadline, deadline + 1), "DEADLINE_EXCEEDED");
  assert.equal(cancelCause(deadline, deadline - DEADLINE_SLACK_MS), "DEADLINE_EXCEEDED");
  assert.equal(cancelCause(deadline, deadline - DEADLINE_SLACK_MS - 1), "CANCELLED");
});

test("deadlineMs accepts grpc-js deadlines", () => {
  assert.equal(deadlineMs(Infinity), undefined);
  assert.equal(deadlineMs(new Date(42)), 42);
  assert.equal(deadlineMs(42), 42);
});
