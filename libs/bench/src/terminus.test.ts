import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLocalStore, type ObjectStore } from "@abl/store";
import { createLocalEnvironment } from "./env-local.ts";
import { type FakeModelStep, startFakeModel } from "./fake-model.ts";
import { createLlmClient } from "./llm-client.ts";
import { LOCAL_TASKS_DIR } from "./local-tasks.ts";
import { loadTask, type Task } from "./task.ts";
import { createTerminusAgent, type TerminusOptions } from "./terminus.ts";
import { type RunTrialOptions, runTrial } from "./trial.ts";

const act = (keystrokes: string[], done = false, duration = 0.3): FakeModelStep => ({
  content: JSON.stringify({
    analysis: "looking",
    plan: "act",
    commands: keystrokes.map((k) => ({ keystrokes: k, duration })),
    task_complete: done,
  }),
});
const DONE = act([], true);
const WRITE_HELLO = "printf 'Hello, world!\\n' > /app/hello.txt\n";

let tmp: string;
let task: Task;
let store: ObjectStore;
let n = 0;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "abl-term-"));
  task = await loadTask(join(LOCAL_TASKS_DIR, "hello-file"));
  store = createLocalStore({ root: join(tmp, "store"), fsync: false });
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function trial(
  steps: FakeModelStep[] | ((i: number) => FakeModelStep),
  agentOpts: Partial<TerminusOptions> = {},
  trialOpts: Partial<RunTrialOptions> = {},
) {
  const fake = await startFakeModel(
    typeof steps === "function" ? { respond: (_r, i) => steps(i) } : { steps },
  );
  try {
    const llm = createLlmClient({
      endpoint: fake.endpoint,
      model: "fake",
      backoffMs: 5,
      sampling: { temperature: 0.7 },
    });
    const agent = createTerminusAgent({ format: "json", llm, ...agentOpts });
    const trialId = `t${++n}`;
    const result = await runTrial(
      { trialId, variant: "base", replica: 0, task, agent },
      {
        envFactory: (t, id) => createLocalEnvironment(t, id),
        store,
        prefix: "trials",
        retryBackoffMs: 5,
        maxAttempts: 2,
        ...trialOpts,
      },
    );
    return { result, requests: fake.requests, dir: join(tmp, "store", "trials", trialId) };
  } finally {
    await fake.close();
  }
}

describe("Terminus-2 agent driven by a scripted model in the real sandbox", () => {
  it("solves a task with double confirmation", async () => {
    const { result, requests, dir } = await trial([act([WRITE_HELLO]), DONE, DONE]);
    assert.equal(result.outcome, "passed", result.detail);
    assert.equal(result.reward, 1);
    assert.equal(result.turns, 3);
    assert.equal(result.parseErrors, 0);
    assert.equal(requests.length, 3);
    const first = requests[0]!.messages;
    assert.equal(first.length, 1);
    assert.match(first[0]!.content, /Create the file `\/app\/hello.txt`/);
    assert.match(first[0]!.content, /Current Terminal Screen:/);
    assert.match(requests[1]!.messages.at(-1)!.content, /New Terminal Output:/);
    assert.match(requests[2]!.messages.at(-1)!.content, /Are you sure\?/);
    assert.equal(requests[0]!.body.temperature, 0.7);
    assert.deepEqual(result.agent.flags, { temperature: 0.7 });
    assert.ok(result.tokensIn > 0 && result.tokensOut > 0);
    const trace = (await readFile(join(dir, "agent", "trace.jsonl"), "utf8")).trim().split("\n");
    assert.equal(trace.length, 3);
    assert.equal(JSON.parse(trace[0]!).commands[0].keystrokes, WRITE_HELLO);
    const pane = await readFile(join(dir, "agent", "logs", "terminus_2.pane"), "utf8");
    assert.match(pane, /hello\.txt/);
  });

  const split: FakeModelStep = {
    content: `{"analysis":"empty dir","plan":"write it"}\n{"commands":[{"keystrokes":${JSON.stringify(WRITE_HELLO)},"duration":0.3}]}`,
  };

  it("split JSON is a parse error without the flag (fed back, no keys sent)", async () => {
    const { result, requests } = await trial([split, DONE, DONE]);
    assert.equal(result.outcome, "failed");
    assert.equal(result.reward, 0);
    assert.equal(result.parseErrors, 1);
    assert.equal(result.noCmdTurns, 1);
    const feedback = requests[1]!.messages.at(-1)!.content;
    assert.match(
      feedback,
      /^Previous response had parsing errors:\nERROR: Missing required fields: commands/,
    );
    assert.doesNotMatch(feedback, /Terminal/);
  });

  it("split JSON is an action with acceptSplitJson, recorded as a flag", async () => {
    const { result } = await trial([split, DONE, DONE], { acceptSplitJson: true });
    assert.equal(result.outcome, "passed", result.detail);
    assert.equal(result.parseErrors, 0);
    assert.equal(result.agent.flags.acceptSplitJson, true);
  });

  it("a model that never completes stops at maxTurns, or at the agent timeout", async () => {
    const busy = act(["ls\n"], false, 0.2);
    const capped = await trial([busy], { maxTurns: 4 });
    assert.equal(capped.result.outcome, "failed");
    assert.equal(capped.result.turns, 4);
    assert.equal(capped.result.agent.flags.maxTurns, 4);
    const timed = await trial([busy], {}, { agentTimeoutMultiplier: 5 / 120 });
    assert.equal(timed.result.outcome, "agent_timeout");
    assert.equal(timed.result.reward, 0);
    assert.ok(timed.result.turns >= 1);
    assert.match(timed.result.detail ?? "", /agent exceeded timeout_sec = 120/);
  });

  it("summarizes and continues when the context overflows", async () => {
    const steps: FakeModelStep[] = [
      act(["echo step-one\n"]),
      {
        status: 400,
        error:
          "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
      },
      { content: "SUMMARY: the task is to create hello.txt; nothing done yet." },
      { content: "1. Does /app/hello.txt exist?" },
      { content: "1. No." },
      act([WRITE_HELLO]),
      DONE,
      DONE,
    ];
    const { result, requests, dir } = await trial(steps);
    assert.equal(result.outcome, "passed", result.detail);
    assert.match(requests[2]!.messages.at(-1)!.content, /run out of context/);
    assert.equal(requests[3]!.messages.length, 1);
    assert.match(requests[3]!.messages[0]!.content, /taking over/);
    assert.match(requests[4]!.messages.at(-1)!.content, /Does \/app\/hello.txt exist/);
    const resumed = requests[5]!.messages;
    assert.equal(resumed.length, 3);
    assert.match(resumed[2]!.content, /Answers from the previous instance:\n1. No./);
    const trace = await readFile(join(dir, "agent", "trace.jsonl"), "utf8");
    assert.match(trace, /"kind":"summarization"/);
  });

  it("summarizes proactively when the known context limit is nearly used", async () => {
    const big = { ...(act(["echo one\n"]) as { content: string }), tokensIn: 3000, tokensOut: 100 };
    const steps: FakeModelStep[] = [
      big,
      { content: "SUMMARY: nothing written yet." },
      { content: "1. Is hello.txt there?" },
      { content: "1. No." },
      act([WRITE_HELLO]),
      DONE,
      DONE,
    ];
    const { result, requests } = await trial(steps, { contextLimitTokens: 10_000 });
    assert.equal(result.outcome, "passed", result.detail);
    assert.match(requests[1]!.messages.at(-1)!.content, /run out of context/);
    assert.equal(result.agent.flags.temperature, 0.7);
  });

  it("an agent writing /logs/verifier/reward.* itself is ignored", async () => {
    const cheat = act([
      "mkdir -p /logs/verifier && echo 1 > /logs/verifier/reward.txt && echo '{\"reward\": 1}' > /logs/verifier/reward.json\n",
    ]);
    const { result, dir } = await trial([cheat, DONE, DONE]);
    assert.equal(result.outcome, "failed");
    assert.equal(result.reward, 0);
    assert.equal((await readFile(join(dir, "verifier", "reward.txt"), "utf8")).trim(), "0");
  });

  it("huge outputs are limited to 10 KB, head and tail", async () => {
    const { requests } = await trial([act(["seq 1 200000\n"], false, 2), DONE, DONE]);
    const obs = requests[1]!.messages.at(-1)!.content;
    assert.match(obs, /output limited to 10000 bytes; \d+ interior bytes omitted/);
    assert.ok(Buffer.byteLength(obs) < 10_300, `${Buffer.byteLength(obs)} bytes`);
  });

  it("an LLM endpoint that is down gives llm_error with a null reward after retries", async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const llm = createLlmClient({
      endpoint: `http://127.0.0.1:${port}/v1`,
      model: "m",
      backoffMs: 5,
      maxRetries: 1,
    });
    const result = await runTrial(
      {
        trialId: "down",
        variant: "base",
        replica: 0,
        task,
        agent: createTerminusAgent({ format: "json", llm }),
      },
      {
        envFactory: (t, id) => createLocalEnvironment(t, id),
        store,
        prefix: "trials",
        retryBackoffMs: 5,
        maxAttempts: 2,
      },
    );
    assert.equal(result.outcome, "llm_error");
    assert.equal(result.reward, null);
    assert.equal(result.attempts, 2);
    assert.match(result.detail ?? "", /after 2 attempts/);
  });

  it("drives the XML variant", async () => {
    const xml = (body: string, done: boolean): FakeModelStep => ({
      content: `<response><analysis>a</analysis><plan>p</plan><commands>${body}</commands><task_complete>${done}</task_complete></response>`,
    });
    const { result, requests } = await trial(
      [
        xml(`<keystrokes duration="0.3">${WRITE_HELLO}</keystrokes>`, false),
        xml("", true),
        xml("", true),
      ],
      { format: "xml" },
    );
    assert.equal(result.outcome, "passed", result.detail);
    assert.equal(result.agent.name, "terminus-xml");
    assert.match(requests[0]!.messages[0]!.content, /<response>/);
  });
});
