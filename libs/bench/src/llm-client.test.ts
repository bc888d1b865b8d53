import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { ContextLengthError, LlmError } from "./errors.ts";
import { startFakeModel } from "./fake-model.ts";
import { createLlmClient, isContextLengthMessage } from "./llm-client.ts";
import { KeyedSemaphore } from "./semaphore.ts";

describe("LLM client", () => {
  it("returns content, reasoning apart, tokens; sends model and sampling", async () => {
    const fake = await startFakeModel({
      steps: [{ content: "answer", reasoning: "thinking {", tokensIn: 10, tokensOut: 3 }],
    });
    try {
      const c = createLlmClient({
        endpoint: fake.endpoint,
        model: "m",
        sampling: { temperature: 0.7 },
      });
      const r = await c.chat([{ role: "user", content: "hi" }]);
      assert.equal(r.content, "answer");
      assert.equal(r.reasoningContent, "thinking {");
      assert.equal(r.tokensIn, 10);
      assert.equal(r.tokensOut, 3);
      assert.equal(fake.requests[0]!.body.temperature, 0.7);
      assert.equal(fake.requests[0]!.model, "m");
      assert.equal("max_tokens" in fake.requests[0]!.body, false);
    } finally {
      await fake.close();
    }
  });

  it("retries 5xx with backoff, then succeeds", async () => {
    const fake = await startFakeModel({
      steps: [{ status: 503, error: "busy" }, { status: 502, error: "gw" }, { content: "ok" }],
    });
    try {
      const c = createLlmClient({ endpoint: fake.endpoint, model: "m", backoffMs: 5 });
      const r = await c.chat([{ role: "user", content: "hi" }]);
      assert.equal(r.content, "ok");
      assert.equal(r.attempts, 3);
    } finally {
      await fake.close();
    }
  });

  it("detects context-length errors and does not retry them", async () => {
    const fake = await startFakeModel({
      steps: [{ status: 400, error: "This model's maximum context length is 4096 tokens." }],
    });
    try {
      const c = createLlmClient({ endpoint: fake.endpoint, model: "m", backoffMs: 5 });
      await assert.rejects(c.chat([{ role: "user", content: "x" }]), ContextLengthError);
      assert.equal(fake.requests.length, 1);
    } finally {
      await fake.close();
    }
    assert.ok(isContextLengthMessage("the input exceeds the model's context window"));
    assert.ok(!isContextLengthMessage("invalid temperature"));
  });

  it("does not retry other 4xx", async () => {
    const fake = await startFakeModel({ steps: [{ status: 401, error: "bad key" }] });
    try {
      const c = createLlmClient({ endpoint: fake.endpoint, model: "m", backoffMs: 5 });
      await assert.rejects(
        c.chat([{ role: "user", content: "x" }]),
        (e: LlmError) => e.status === 401,
      );
      assert.equal(fake.requests.length, 1);
    } finally {
      await fake.close();
    }
  });

  it("an endpoint that is down fails after the retries with an LlmError", async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const c = createLlmClient({
      endpoint: `http://127.0.0.1:${port}/v1`,
      model: "m",
      backoffMs: 5,
      maxRetries: 2,
    });
    await assert.rejects(
      c.chat([{ role: "user", content: "x" }]),
      (e: Error) => e instanceof LlmError && /after 3 attempts/.test(e.message),
    );
  });

  it("limits requests in flight per endpoint", async () => {
    let inFlight = 0;
    let peak = 0;
    const s = createServer((req, res) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      req.resume();
      setTimeout(() => {
        inFlight--;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({ choices: [{ message: { content: "x" }, finish_reason: "stop" }] }),
        );
      }, 30);
    });
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const port = (s.address() as AddressInfo).port;
    try {
      const shared = new KeyedSemaphore(2);
      const a = createLlmClient({
        endpoint: `http://127.0.0.1:${port}/v1`,
        model: "a",
        inFlight: shared,
      });
      const b = createLlmClient({
        endpoint: `http://127.0.0.1:${port}/v1`,
        model: "b",
        inFlight: shared,
      });
      await Promise.all(
        Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).chat([{ role: "user", content: "x" }])),
      );
      assert.equal(peak, 2);
    } finally {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  });
});
