import assert from "node:assert/strict";
import { test } from "node:test";
import { expandVariants, parseSweepSpec, SpecError } from "./spec.ts";

const GOOD = `
name: demo
model:
  source: /models/smollm2
contrast:
  preset: agent-shell
  limit: 24
variants:
  - name: base
    kind: base
  - name: abl
    kind: abliterated
    layer: [selected, 5]
    scale: [1, 0.5]
bench:
  replicas: 3
`;

test("a good spec parses with defaults filled in", () => {
  const s = parseSweepSpec(GOOD);
  assert.equal(s.name, "demo");
  assert.equal(s.model.source, "/models/smollm2");
  assert.equal(s.contrast.preset, "agent-shell");
  assert.equal(s.contrast.limit, 24);
  assert.equal(s.capture.positions, "last");
  assert.equal(s.directions.selection, "best-auc");
  assert.equal(s.refusal.maxTokens, 100);
  assert.equal(s.bench.replicas, 3);
  assert.equal(s.bench.agent, "terminus-json");
  assert.equal(s.variants.length, 2);
});

test("grid expansion names swept axes and resolves `selected`", () => {
  const s = parseSweepSpec(GOOD);
  const vs = expandVariants(s.variants, 7);
  assert.deepEqual(
    vs.map((v) => v.name),
    ["base", "abl-L7-s1", "abl-L7-s0.5", "abl-L5-s1", "abl-L5-s0.5"],
  );
  const one = expandVariants(
    parseSweepSpec("model: {source: x}\nvariants: [{kind: abliterated, name: a}]").variants,
    3,
  );
  assert.deepEqual(one, [
    {
      kind: "abliterated",
      name: "a",
      layer: 3,
      scale: 1,
      method: "project",
      targets: ["embed", "attn_out", "mlp_out"],
    },
  ]);
});

test("mistakes name the key and the line", () => {
  const bad = `model:
  source: m
bench:
  replica: 3
  temperature: high
variants:
  - kind: abliterated
    name: x
    scale: 9
  - kind: checkpoint
    name: y
`;
  let err: unknown;
  try {
    parseSweepSpec(bad, "bad.yaml");
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof SpecError);
  const text = err.message;
  assert.match(text, /bench\.replica \(line 4\): unknown key "replica"/);
  assert.match(text, /bench\.temperature \(line 5\): expected a number/);
  assert.match(text, /variants\[0\]\.scale\[0\] \(line 9\): 9 is above the maximum 4/);
  assert.match(text, /variants\[1\]\.path .*needs a path/);
  assert.equal(err.problems.length, 4);
});

test("a missing model and YAML syntax errors are reported", () => {
  assert.throws(() => parseSweepSpec("name: x\n"), /model\.source.*required/);
  assert.throws(() => parseSweepSpec("model: [unclosed\n"), /YAML syntax/);
  assert.throws(
    () => parseSweepSpec("model: {source: m}\nvariants: [{kind: base}, {kind: base}]"),
    /used twice/,
  );
});
