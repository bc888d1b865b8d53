import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseJsonResponse } from "./parse-json.ts";
import { parseXmlResponse } from "./parse-xml.ts";
import { incrementalOutput, limitOutput, MAX_OUTPUT_BYTES } from "./terminal-output.ts";

const good = JSON.stringify({
  analysis: "a",
  plan: "p",
  commands: [
    { keystrokes: "ls\n", duration: 0.1 },
    { keystrokes: "pwd\n", duration: 2 },
  ],
  task_complete: false,
});

describe("JSON parser", () => {
  it("accepts a well-formed response without warnings", () => {
    const r = parseJsonResponse(good);
    assert.ok(r.ok);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.action.commands, [
      { keystrokes: "ls\n", duration: 0.1 },
      { keystrokes: "pwd\n", duration: 2 },
    ]);
    assert.equal(r.action.taskComplete, false);
  });

  it("takes the first balanced object and warns about text around it", () => {
    const r = parseJsonResponse(`Sure! ${good} and {"other": 1}`);
    assert.ok(r.ok);
    assert.ok(r.warnings.some((w) => w.includes("before")));
    assert.ok(r.warnings.some((w) => w.includes("after")));
  });

  it("is string- and escape-aware when matching braces", () => {
    const text = JSON.stringify({
      analysis: 'has } and { and \\" quote',
      plan: "p",
      commands: [{ keystrokes: 'echo "}{"\n', duration: 1 }],
    });
    const r = parseJsonResponse(text);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.action.commands[0]!.keystrokes, 'echo "}{"\n');
    assert.equal(r.action.analysis, 'has } and { and \\" quote');
  });

  it("treats an empty commands list as a valid wait", () => {
    const r = parseJsonResponse('{"analysis":"a","plan":"p","commands":[]}');
    assert.ok(r.ok);
    assert.deepEqual(r.action.commands, []);
  });

  it("rejects a missing commands key and flags it as missing", () => {
    const r = parseJsonResponse('{"analysis":"a","plan":"p"}');
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.error.includes("Missing required fields: commands"));
    assert.ok(!r.ok && r.commandsMissing);
  });

  it("rejects missing analysis or plan", () => {
    const r = parseJsonResponse('{"commands":[]}');
    assert.ok(!r.ok && r.error.includes("analysis, plan") && !r.commandsMissing);
  });

  it("reports no JSON at all", () => {
    const r = parseJsonResponse("I will now run ls");
    assert.ok(!r.ok && r.error.includes("No valid JSON"));
  });

  it("repair (a): closes missing braces with an AUTO-CORRECTED warning", () => {
    const r = parseJsonResponse(
      '{"analysis":"a","plan":"p","commands":[{"keystrokes":"ls\\n","duration":1}]',
    );
    assert.ok(r.ok, JSON.stringify(r));
    assert.ok(r.warnings.some((w) => w.startsWith("AUTO-CORRECTED")));
    assert.equal(r.action.commands.length, 1);
  });

  it("repair (b): the first parseable object when the first balanced one is invalid", () => {
    const text =
      '{"analysis": bad} then {"analysis":"a","plan":"p","commands":[{"keystrokes":"x\\n","duration":1}]}';
    const r = parseJsonResponse(text);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.action.commands[0]!.keystrokes, "x\n");
    assert.ok(r.warnings.some((w) => w.startsWith("AUTO-CORRECTED")));
  });

  it("split JSON is an error without the flag and an action with it", () => {
    const text =
      '{"analysis":"look","plan":"list"}\n{"commands":[{"keystrokes":"ls\\n","duration":0.1}]}';
    const off = parseJsonResponse(text);
    assert.ok(!off.ok && off.error.includes("Missing required fields: commands"));
    const on = parseJsonResponse(text, { acceptSplitJson: true });
    assert.ok(on.ok, JSON.stringify(on));
    assert.equal(on.action.analysis, "look");
    assert.equal(on.action.commands[0]!.keystrokes, "ls\n");
    assert.ok(on.warnings.some((w) => w.startsWith("SPLIT-JSON")));
  });

  it("rejects non-array commands and items without string keystrokes", () => {
    assert.ok(!parseJsonResponse('{"analysis":"a","plan":"p","commands":"ls"}').ok);
    const r = parseJsonResponse('{"analysis":"a","plan":"p","commands":[{"duration":1}]}');
    assert.ok(!r.ok && r.error.includes("keystrokes"));
  });

  it("warns on missing/non-numeric duration, unknown keys, order, non-string analysis, missing newline", () => {
    const text =
      '{"plan":"p","analysis":5,"commands":[{"keystrokes":"ls"},{"keystrokes":"x\\n","duration":"slow"}],"mood":"ok"}';
    const r = parseJsonResponse(text);
    assert.ok(r.ok, JSON.stringify(r));
    const all = r.warnings.join("\n");
    assert.match(all, /Command 1: missing duration/);
    assert.match(all, /Command 2: duration is not a number/);
    assert.match(all, /Unknown fields: mood/);
    assert.match(all, /order/);
    assert.match(all, /'analysis' should be a string/);
    assert.match(all, /Command 1 should end with a newline/);
    assert.equal(r.action.commands[0]!.duration, 1);
  });

  it("task_complete accepts true/'true'/'1'/'yes'; command errors become warnings", () => {
    for (const v of ["true", '"true"', '"1"', '"yes"']) {
      const r = parseJsonResponse(
        `{"analysis":"a","plan":"p","commands":[{"keystrokes":"ls\\n"}],"task_complete":${v}}`,
      );
      assert.ok(r.ok && r.action.taskComplete && r.action.commands.length === 1, v);
    }
    const r = parseJsonResponse(
      '{"analysis":"a","plan":"p","commands":"bad","task_complete":true}',
    );
    assert.ok(r.ok && r.warnings.some((w) => w.includes("must be an array")));
    assert.ok(r.ok && r.action.commands.length === 0);
    const no = parseJsonResponse('{"analysis":"a","plan":"p","commands":[],"task_complete":"no"}');
    assert.ok(no.ok && !no.action.taskComplete);
  });
});

describe("XML parser", () => {
  const xml = `<response><analysis>a</analysis><plan>p</plan><commands><keystrokes duration="0.5">cat <<'E' > f && echo "a<b"\n</keystrokes><keystrokes duration="2">ls\n</keystrokes></commands><task_complete>false</task_complete></response>`;

  it("parses raw keystrokes and durations", () => {
    const r = parseXmlResponse(xml);
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.warnings, []);
    assert.equal(r.action.commands[0]!.keystrokes, `cat <<'E' > f && echo "a<b"\n`);
    assert.equal(r.action.commands[0]!.duration, 0.5);
  });

  it("appends a missing </response> and executes only the first block", () => {
    const r = parseXmlResponse(xml.replace("</response>", ""));
    assert.ok(r.ok && r.warnings.some((w) => w.includes("</response>")));
    const two = parseXmlResponse(`${xml}\n${xml.replace("ls", "rm")}`);
    assert.ok(two.ok && two.warnings.some((w) => w.includes("Only the first")));
    assert.ok(two.ok && two.action.commands[1]!.keystrokes === "ls\n");
  });

  it("empty <commands> is a warning, missing is an error unless complete", () => {
    const empty = parseXmlResponse(
      "<response><analysis>a</analysis><plan>p</plan><commands></commands></response>",
    );
    assert.ok(empty.ok && empty.warnings.some((w) => w.includes("not taking any action")));
    const missing = parseXmlResponse("<response><analysis>a</analysis><plan>p</plan></response>");
    assert.ok(!missing.ok && missing.commandsMissing);
    const done = parseXmlResponse(
      "<response><analysis>a</analysis><plan>p</plan><task_complete>true</task_complete></response>",
    );
    assert.ok(done.ok && done.action.taskComplete);
  });

  it("<task_complete/> and an empty tag mean false", () => {
    for (const tc of ["<task_complete/>", "<task_complete></task_complete>"]) {
      const r = parseXmlResponse(
        `<response><analysis>a</analysis><plan>p</plan><commands></commands>${tc}</response>`,
      );
      assert.ok(r.ok && !r.action.taskComplete, tc);
    }
  });

  it("reports a missing <response>", () => {
    assert.ok(!parseXmlResponse('{"analysis":"a"}').ok);
  });
});

describe("terminal output", () => {
  it("limits to head and tail halves with a marker naming the omitted bytes", () => {
    const big = "h".repeat(8000) + "m".repeat(10_000) + "t".repeat(8000);
    const out = limitOutput(big);
    assert.ok(out.startsWith("h".repeat(5000)));
    assert.ok(out.endsWith("t".repeat(5000)));
    assert.match(out, /output limited to 10000 bytes; 16000 interior bytes omitted/);
    assert.ok(Buffer.byteLength(out) < MAX_OUTPUT_BYTES + 200);
    assert.equal(limitOutput("short"), "short");
  });

  it("returns what is new, else the screen", () => {
    assert.equal(
      incrementalOutput("$ ls\na\n", "$ ls\na\n$ pwd\n/app\n", "scr"),
      "New Terminal Output:\n$ pwd\n/app",
    );
    assert.equal(
      incrementalOutput("$ \n\n", "$ echo hi\nhi\n$\n\n", "scr"),
      "New Terminal Output:\n$ echo hi\nhi\n$",
    );
    assert.equal(incrementalOutput("gone", "other", "scr\n"), "Current Terminal Screen:\nscr");
    assert.equal(incrementalOutput("same", "same", "scr"), "Current Terminal Screen:\nscr");
    assert.equal(incrementalOutput(null, "x", "scr"), "Current Terminal Screen:\nscr");
  });
});
