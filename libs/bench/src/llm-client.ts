/**
 * An OpenAI-compatible chat-completions client for the agent: retries with exponential backoff
 * on network errors, 429 and 5xx; a per-endpoint limit on requests in flight (shared through a
 * {@link KeyedSemaphore}); context-length errors detected from the server's message (vLLM,
 * sglang, OpenAI wordings; reference/terminal-bench.md §4.6) and raised as
 * {@link ContextLengthError}, never retried; `reasoning_content` kept apart from the answer.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { ContextLengthError, LlmError } from "./errors.ts";
import { KeyedSemaphore } from "./semaphore.ts";

/** One chat message. */
export interface ChatMessage {
  readonly role: "system" | "user" | "assistant";
  readonly content: string;
}

/** One completion. */
export interface ChatCompletion {
  /** The answer text (`message.content`). */
  readonly content: string;
  /** Thinking text the server split off (`message.reasoning_content`), or null. */
  readonly reasoningContent: string | null;
  /** `stop`, `length`, ... as reported. */
  readonly finishReason: string | null;
  readonly tokensIn: number;
  readonly tokensOut: number;
  /** Seconds from first attempt to answer, retries and waits included. */
  readonly latencySec: number;
  /** Attempts made (1 = no retry). */
  readonly attempts: number;
}

/** Sampling parameters sent with every request; absent ones are not sent. */
export interface Sampling {
  readonly temperature?: number;
  readonly top_p?: number;
  readonly max_tokens?: number;
}

/** Options of {@link createLlmClient}. */
export interface LlmClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:8000/v1` (`/chat/completions` is appended). */
  readonly endpoint: string;
  readonly model: string;
  readonly apiKey?: string;
  readonly sampling?: Sampling;
  /** Retries after the first attempt (default 3, like upstream `_query_llm`). */
  readonly maxRetries?: number;
  /** First backoff in ms, doubled per retry with jitter (default 500). */
  readonly backoffMs?: number;
  /** Largest backoff in ms (default 30 s). */
  readonly maxBackoffMs?: number;
  /** Per-request timeout in ms (default 10 min: slow local models answer long prompts slowly). */
  readonly requestTimeoutMs?: number;
  /** Shared in-flight limits per endpoint; defaults to a private one with `maxInFlight`. */
  readonly inFlight?: KeyedSemaphore;
  /** Used when `inFlight` is absent (default 8). */
  readonly maxInFlight?: number;
  readonly fetch?: typeof fetch;
}

/** A chat client bound to one endpoint and model. */
export interface LlmClient {
  readonly endpoint: string;
  readonly model: string;
  readonly sampling: Sampling;
  chat(messages: readonly ChatMessage[], signal?: AbortSignal): Promise<ChatCompletion>;
}

/** Largest response body read from the server (a completion is text; 32 MiB is generous). */
export const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

const CONTEXT_PATTERNS = [
  /context length/i,
  /context window/i,
  /maximum context/i,
  /context_length_exceeded/i,
  /prompt is too long/i,
  /too many tokens/i,
  /input .*exceeds? .*(limit|maximum)/i,
  /longer than the model/i,
];

/** True when an error text from a server says the prompt does not fit the context. */
export function isContextLengthMessage(text: string): boolean {
  return CONTEXT_PATTERNS.some((p) => p.test(text));
}

function retryable(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/** Creates a client; validates options up front. */
export function createLlmClient(options: LlmClientOptions): LlmClient {
  let base: URL;
  try {
    base = new URL(options.endpoint);
  } catch (err) {
    throw new LlmError(`endpoint "${options.endpoint}" is not a URL`, { cause: err });
  }
  if (!options.model) throw new LlmError("model name is empty");
  const url = `${base.href.replace(/\/+$/, "")}/chat/completions`;
  const maxRetries = options.maxRetries ?? 3;
  const backoffMs = options.backoffMs ?? 500;
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  const timeoutMs = options.requestTimeoutMs ?? 600_000;
  const inFlight = options.inFlight ?? new KeyedSemaphore(options.maxInFlight ?? 8);
  const doFetch = options.fetch ?? fetch;
  const sampling = options.sampling ?? {};

  async function once(messages: readonly ChatMessage[], signal?: AbortSignal) {
    const body = JSON.stringify({ model: options.model, messages, ...sampling });
    const timeout = AbortSignal.timeout(timeoutMs);
    const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const res = await doFetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}),
      },
      body,
      signal: sig,
    });
    const text = await res.text();
    if (text.length > MAX_RESPONSE_BYTES) {
      throw new LlmError(`response of ${text.length} bytes exceeds ${MAX_RESPONSE_BYTES}`);
    }
    return { status: res.status, text };
  }

  return {
    endpoint: options.endpoint,
    model: options.model,
    sampling,
    async chat(messages, signal) {
      const started = performance.now();
      let lastErr: unknown;
      for (let attempt = 1; attempt <= maxRetries + 1; attempt++) {
        if (attempt > 1) {
          const wait = Math.min(maxBackoffMs, backoffMs * 2 ** (attempt - 2));
          await sleep(wait * (0.75 + Math.random() * 0.5), undefined, signal ? { signal } : {});
        }
        let r: { status: number; text: string };
        const release = await inFlight.get(base.origin).acquire(signal);
        try {
          r = await once(messages, signal);
        } catch (err) {
          if (signal?.aborted) throw signal.reason;
          lastErr = new LlmError(`${url}: ${(err as Error).message}`, { cause: err });
          continue;
        } finally {
          release();
        }
        if (r.status >= 400) {
          const msg = `${url}: HTTP ${r.status}: ${r.text.slice(0, 500)}`;
          if (r.status === 400 || r.status === 413 || r.status === 422) {
            if (isContextLengthMessage(r.text))
              throw new ContextLengthError(msg, { status: r.status });
          }
          lastErr = new LlmError(msg, { status: r.status });
          if (retryable(r.status)) continue;
          throw lastErr;
        }
        let json: {
          choices?: {
            message?: { content?: string | null; reasoning_content?: string | null };
            finish_reason?: string | null;
          }[];
          usage?: { prompt_tokens?: number; completion_tokens?: number };
        };
        try {
          json = JSON.parse(r.text);
        } catch (err) {
          lastErr = new LlmError(`${url}: response is not JSON: ${r.text.slice(0, 200)}`, {
            cause: err,
          });
          continue;
        }
        const choice = json.choices?.[0];
        if (!choice?.message) {
          lastErr = new LlmError(`${url}: response has no choices[0].message`);
          continue;
        }
        return {
          content: choice.message.content ?? "",
          reasoningContent: choice.message.reasoning_content ?? null,
          finishReason: choice.finish_reason ?? null,
          tokensIn: json.usage?.prompt_tokens ?? 0,
          tokensOut: json.usage?.completion_tokens ?? 0,
          latencySec: (performance.now() - started) / 1000,
          attempts: attempt,
        };
      }
      throw lastErr instanceof LlmError
        ? new LlmError(`${lastErr.message} (after ${maxRetries + 1} attempts)`, {
            cause: lastErr,
            ...(lastErr.status === undefined ? {} : { status: lastErr.status }),
          })
        : new LlmError(`${url}: failed after ${maxRetries + 1} attempts`, { cause: lastErr });
    },
  };
}
