/**
 * Renders a model's Jinja chat template with `@huggingface/jinja`, passing the same variables
 * transformers' `apply_chat_template` does (messages, add_generation_prompt, the special token
 * strings; the library itself defines raise_exception and strftime_now). Tools and documents are
 * not passed.
 */
import { Template } from "@huggingface/jinja";

/** Longest chat template accepted (real ones are a few KiB; Qwen3's is the largest at ~4 KiB). */
export const MAX_CHAT_TEMPLATE_CHARS = 1024 * 1024;

/** One chat message. */
export interface ChatMessage {
  readonly role: "system" | "user" | "assistant" | "tool";
  readonly content: string;
}

/** Options of {@link ChatTemplate.render}. */
export interface ChatTemplateOptions {
  /** Append the assistant turn's opening, so the model writes the reply next (default false). */
  readonly addGenerationPrompt?: boolean;
}

/** A chat template that cannot be parsed or rendered, or messages it rejects. */
export class ChatTemplateError extends Error {
  override readonly name = "ChatTemplateError";
}

/** A compiled chat template. */
export interface ChatTemplate {
  readonly source: string;
  render(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string;
}

/** Special token strings the template may refer to. */
export interface ChatTemplateTokens {
  readonly bos_token?: string | undefined;
  readonly eos_token?: string | undefined;
  readonly unk_token?: string | undefined;
  readonly pad_token?: string | undefined;
}

const ROLES = new Set(["system", "user", "assistant", "tool"]);

/** Compiles `source`; throws ChatTemplateError naming the problem when it does not parse. */
export function compileChatTemplate(source: string, tokens: ChatTemplateTokens = {}): ChatTemplate {
  if (source.length > MAX_CHAT_TEMPLATE_CHARS) {
    throw new ChatTemplateError(
      `chat template of ${source.length} characters exceeds the ${MAX_CHAT_TEMPLATE_CHARS}-character limit`,
    );
  }
  let template: Template;
  try {
    template = new Template(source);
  } catch (cause) {
    throw new ChatTemplateError(`chat template does not parse: ${(cause as Error).message}`, {
      cause,
    });
  }
  return {
    source,
    render(messages, options = {}) {
      messages.forEach((m, i) => {
        if (!ROLES.has(m.role))
          throw new ChatTemplateError(`message ${i} has unknown role "${String(m.role)}"`);
        if (typeof m.content !== "string")
          throw new ChatTemplateError(`message ${i} content is not a string`);
      });
      const context: Record<string, unknown> = {
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: options.addGenerationPrompt ?? false,
      };
      for (const [k, v] of Object.entries(tokens)) if (v !== undefined) context[k] = v;
      try {
        return template.render(context);
      } catch (cause) {
        throw new ChatTemplateError(`chat template failed to render: ${(cause as Error).message}`, {
          cause,
        });
      }
    },
  };
}
