/**
 * Adapters from the built-in engine (@abl/engine) to this library's interfaces: a residual
 * capturer, an in-process chat endpoint (no HTTP hop), and the causal-selection probe that
 * generates with one layer's direction ablated.
 */
import {
  compileChatTemplate,
  drain,
  type Engine,
  type LoadedTokenizer,
  type LoadModelOptions,
  loadModel,
} from "@abl/engine";
import type { CapturedBatch, CaptureProgress, ResidualCapturer } from "./capture-job.ts";
import {
  type Bucket,
  type ChatMessage,
  type ContrastPrompt,
  promptMessages,
} from "./contrast-set.ts";
import { type Directions, directionRow } from "./direction-math.ts";
import { ActivationsError, EndpointResponseError } from "./errors.ts";
import type { RefusalJudge } from "./judges.ts";
import { sharedPrefixKl } from "./kl.ts";
import type { AblationProbe } from "./layer-selection.ts";
import type {
  ChatCompletion,
  ChatEndpoint,
  ChatRequest,
  GeneratedToken,
} from "./openai-endpoint.ts";
import { DEFAULT_KL_TOKENS, DEFAULT_TOP_LOGPROBS, MIN_EVAL_TOKENS } from "./refusal-eval.ts";

/** Prompts per engine forward pass during capture. */
export const DEFAULT_CAPTURE_BATCH = 8;

/** Renders prompts to token ids with the tokenizer's template or an override. */
export function createPromptRenderer(
  tokenizer: LoadedTokenizer,
  templateOverride?: string,
): { template: string; render: (messages: readonly ChatMessage[]) => number[] } {
  if (templateOverride) {
    const t = compileChatTemplate(templateOverride);
    return {
      template: templateOverride,
      render: (m) =>
        tokenizer.encode(t.render(m, { addGenerationPrompt: true }), { addSpecialTokens: false }),
    };
  }
  if (!tokenizer.chatTemplate)
    throw new ActivationsError("the tokenizer has no chat template; pass one explicitly");
  return {
    template: tokenizer.chatTemplate.source,
    render: (m) => tokenizer.applyChatTemplate(m, { addGenerationPrompt: true }).ids,
  };
}

/** Options of {@link createBuiltinCapturer}. */
export interface BuiltinCapturerOptions {
  readonly engine: Engine;
  readonly tokenizer: LoadedTokenizer;
  readonly modelDigest: string;
  readonly chatTemplate?: string;
  readonly batchSize?: number;
}

/** A {@link ResidualCapturer} on the built-in engine, at the last prompt token. */
export function createBuiltinCapturer(options: BuiltinCapturerOptions): ResidualCapturer {
  const { engine } = options;
  const renderer = createPromptRenderer(options.tokenizer, options.chatTemplate);
  return {
    engine: "builtin",
    modelDigest: options.modelDigest,
    chatTemplate: renderer.template,
    async *capture(
      bucket: Bucket,
      prompts: readonly ContrastPrompt[],
      signal?: AbortSignal,
    ): AsyncGenerator<CaptureProgress, CapturedBatch> {
      const ids = prompts.map((p) => renderer.render(promptMessages(p)));
      for (const [i, x] of ids.entries()) {
        if (x.length > engine.maxPositions) {
          throw new ActivationsError(
            `${bucket} prompt ${prompts[i]?.id} has ${x.length} tokens, beyond the model's ${engine.maxPositions}-position context`,
          );
        }
      }
      const gen = engine.capture({
        prompts: ids,
        positions: "last",
        batchSize: options.batchSize ?? DEFAULT_CAPTURE_BATCH,
        ...(signal ? { signal } : {}),
      });
      let r = await gen.next();
      while (!r.done) {
        yield { type: "progress", bucket, done: r.value.done, total: r.value.total };
        r = await gen.next();
      }
      // One captured position per prompt, so `[layers+1, 1, D]` is already `[layers+1, D]`.
      return {
        layers: r.value.layers,
        hidden: r.value.hiddenSize,
        rows: r.value.items.map((it) => it.residual),
      };
    },
  };
}

/**
 * A {@link ChatEndpoint} that runs the engine in process: greedy generation with top logprobs,
 * token strings decoded one id at a time.
 */
export function createEngineEndpoint(
  engine: Engine,
  tokenizer: LoadedTokenizer,
  model: string,
  chatTemplate?: string,
): ChatEndpoint {
  const renderer = createPromptRenderer(tokenizer, chatTemplate);
  const piece = (id: number) => tokenizer.decode([id]);
  return {
    baseUrl: "engine://in-process",
    model,
    async complete(request: ChatRequest, signal?: AbortSignal): Promise<ChatCompletion> {
      const ids = renderer.render(request.messages);
      if (ids.length + request.maxTokens > engine.maxPositions) {
        throw new EndpointResponseError(
          `prompt of ${ids.length} tokens + ${request.maxTokens} new exceeds the ${engine.maxPositions}-position context`,
        );
      }
      const [seq] = await drain(
        engine.generate({
          prompts: [ids],
          maxTokens: request.maxTokens,
          sampling: { temperature: request.temperature ?? 0 },
          stopTokenIds: tokenizer.stopTokenIds,
          ...(request.topLogprobs ? { logprobs: request.topLogprobs } : {}),
          decode: (x) => tokenizer.decode(x, { skipSpecialTokens: true }),
          ...(signal ? { signal } : {}),
        }),
      );
      if (!seq) throw new EndpointResponseError("engine returned no sequence");
      const out: { text: string; finishReason: string; tokens?: GeneratedToken[] } = {
        text: seq.text ?? tokenizer.decode(seq.tokens, { skipSpecialTokens: true }),
        finishReason: seq.finishReason,
      };
      if (request.topLogprobs && seq.logprobs) {
        out.tokens = seq.tokens.map((t, i) => {
          const lp = seq.logprobs?.[i];
          return {
            token: piece(t),
            logprob: lp?.logprob ?? 0,
            top: (lp?.top ?? []).map((x) => ({ token: piece(x.token), logprob: x.logprob })),
          };
        });
      }
      return out;
    },
  };
}

/** Options of {@link createCausalProbe}. */
export interface CausalProbeOptions {
  /** HF folder of the model, loaded once per probed layer with the ablation baked in. */
  readonly modelDir: string;
  readonly tokenizer: LoadedTokenizer;
  /** The unedited model, for KL. */
  readonly base: ChatEndpoint;
  readonly refuse: readonly ContrastPrompt[];
  readonly comply: readonly ContrastPrompt[];
  readonly judge: RefusalJudge;
  readonly maxTokens?: number;
  readonly klTokens?: number;
  readonly chatTemplate?: string;
  readonly load?: (dir: string, options: LoadModelOptions) => Promise<Engine>;
}

/**
 * Arditi et al.'s bypass test as a probe: with the layer's direction ablated everywhere, the
 * refusal rate on the select split's refuse prompts and the KL against the base on its comply
 * prompts.
 */
export function createCausalProbe(
  directions: Directions,
  options: CausalProbeOptions,
): AblationProbe {
  const load = options.load ?? loadModel;
  const maxTokens = options.maxTokens ?? MIN_EVAL_TOKENS;
  const k = options.klTokens ?? DEFAULT_KL_TOKENS;
  return async (layer, signal) => {
    const engine = await load(options.modelDir, {
      intervention: {
        type: "ablate",
        direction: Float32Array.from(directionRow(directions, layer)),
      },
      ...(signal ? { signal } : {}),
    });
    try {
      const ep = createEngineEndpoint(
        engine,
        options.tokenizer,
        `ablate-${layer}`,
        options.chatTemplate,
      );
      let refusals = 0;
      for (const p of options.refuse) {
        const r = await ep.complete({ messages: promptMessages(p), maxTokens }, signal);
        if ((await options.judge.judge(p.user, r.text, signal)) === "refusal") refusals++;
      }
      let kl = 0;
      let n = 0;
      for (const p of options.comply) {
        const req = {
          messages: promptMessages(p),
          maxTokens: k,
          topLogprobs: DEFAULT_TOP_LOGPROBS,
        };
        const b = await options.base.complete(req, signal);
        const v = await ep.complete(req, signal);
        const x = sharedPrefixKl(b.tokens ?? [], v.tokens ?? [], k);
        if (x.positions > 0) {
          kl += x.kl;
          n++;
        }
      }
      return { refusalRate: refusals / Math.max(1, options.refuse.length), kl: n > 0 ? kl / n : 0 };
    } finally {
      await engine.dispose();
    }
  };
}
