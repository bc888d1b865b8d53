/**
 * A scripted OpenAI-compatible server (node:http) that replays fixed responses. Tests and demos
 * use it to drive the real agent without a model: each POST to `/v1/chat/completions` gets the
 * next scripted step (or what `respond` returns), and every request body is recorded.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One scripted reply: an answer, or an HTTP error with a message. */
export type FakeModelStep =
  | {
      readonly content: string;
      readonly reasoning?: string;
      readonly finishReason?: string;
      readonly tokensIn?: number;
      readonly tokensOut?: number;
    }
  | { readonly status: number; readonly error: string };

/** A request the fake model received. */
export interface FakeModelRequest {
  readonly model: string;
  readonly messages: readonly { role: string; content: string }[];
  readonly body: Record<string, unknown>;
}

/** Options of {@link startFakeModel}. */
export interface FakeModelOptions {
  /** Steps replayed in order; after the last, the last one repeats. */
  readonly steps?: readonly FakeModelStep[];
  /** Computes the reply instead of `steps` (index = 0-based request number). */
  readonly respond?: (req: FakeModelRequest, index: number) => FakeModelStep;
}

/** A running fake model. */
export interface FakeModel {
  /** Base URL including `/v1`. */
  readonly endpoint: string;
  readonly requests: FakeModelRequest[];
  close(): Promise<void>;
}

/** Starts the fake model on a random loopback port. */
export async function startFakeModel(options: FakeModelOptions): Promise<FakeModel> {
  const requests: FakeModelRequest[] = [];
  const steps = options.steps ?? [];
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
      res.writeHead(404).end("not found");
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
    const r: FakeModelRequest = {
      model: String(body.model),
      messages: body.messages as FakeModelRequest["messages"],
      body,
    };
    const index = requests.length;
    requests.push(r);
    const step = options.respond
      ? options.respond(r, index)
      : steps[Math.min(index, steps.length - 1)];
    if (!step) {
      res.writeHead(500).end("fake model has no steps");
      return;
    }
    if ("status" in step) {
      res.writeHead(step.status, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: step.error, type: "invalid_request_error" } }));
      return;
    }
    const promptChars = r.messages.reduce((n, m) => n + m.content.length, 0);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        id: `fake-${index}`,
        object: "chat.completion",
        model: r.model,
        choices: [
          {
            index: 0,
            message: {
              role: "assistant",
              content: step.content,
              ...(step.reasoning === undefined ? {} : { reasoning_content: step.reasoning }),
            },
            finish_reason: step.finishReason ?? "stop",
          },
        ],
        usage: {
          // About 4 characters per token when not scripted.
          prompt_tokens: step.tokensIn ?? Math.ceil(promptChars / 4),
          completion_tokens: step.tokensOut ?? Math.ceil(step.content.length / 4),
        },
      }),
    );
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}/v1`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
