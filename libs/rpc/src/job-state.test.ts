import assert from "node:assert/strict";
import { test } from "node:test";
import { JobState } from "./gen/abliterate/v1/common_pb.ts";
import {
  isTerminalJobState,
  JOB_STATE_NAMES,
  jobStateFromName,
  jobStateName,
} from "./job-state.ts";

test("job states round-trip between the wire enum and string literals", () => {
  for (const name of JOB_STATE_NAMES) assert.equal(jobStateName(jobStateFromName(name)), name);
  assert.equal(jobStateName(JobState.RUNNING), "running");
  assert.equal(jobStateName(99 as JobState), "unspecified");
  assert.deepEqual(
    JOB_STATE_NAMES.filter((n) => isTerminalJobState(jobStateFromName(n))),
    ["succeeded", "failed", "cancelled"],
  );
});
