#!/usr/bin/env python3
"""Builds the engine's golden fixtures: tiny random models of every supported architecture,
saved as HF folders (config.json + model.safetensors), plus golden.safetensors holding what HF
transformers computes for them:

  input_ids_<i>      [S_i]            int64   prompt i (prompts have different lengths)
  hidden_<i>         [L+1, S_i, D]    f32     residual stream: embedding output, then every block's
                                              output (not the final norm, unlike HF's last entry)
  logits_<i>         [S_i, V]         f32     logits at every position
  greedy_<i>         [20]             int64   20 greedy tokens generated with the KV cache

Reference only: needs `pip install torch transformers safetensors`; CI never runs it.
Usage: python3 libs/engine/scripts/make-golden.py [OUT_DIR]   (default libs/engine/fixtures/golden)
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures", "golden")
GREEDY_TOKENS = 20
PROMPT_LENGTHS = (11, 6)
VOCAB = 256

COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    initializer_range=0.08,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)

MODELS = {
    # SmolLM2-like: tied embeddings, llama3 RoPE scaling with a short original context so all
    # three frequency bands (kept, scaled, smoothed) occur in head_dim 16.
    "llama3": (
        LlamaConfig,
        LlamaForCausalLM,
        dict(
            tie_word_embeddings=True,
            rope_parameters=dict(
                rope_type="llama3",
                rope_theta=10000.0,
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=32,
            ),
        ),
    ),
    "mistral": (MistralConfig, MistralForCausalLM, dict(tie_word_embeddings=False, sliding_window=None)),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(tie_word_embeddings=True)),
    # head_dim independent of hidden_size / heads, as in real Qwen3 configs.
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, dict(tie_word_embeddings=False, head_dim=32)),
    "llama-yarn": (
        LlamaConfig,
        LlamaForCausalLM,
        dict(
            tie_word_embeddings=False,
            rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0, original_max_position_embeddings=32),
        ),
    ),
}


def block_outputs(model, ids):
    """Residual after the embedding and after every decoder block, at every position."""
    outs = []

    def hook(_module, _inp, out):
        outs.append((out[0] if isinstance(out, tuple) else out).detach())

    handles = [layer.register_forward_hook(hook) for layer in model.model.layers]
    with torch.no_grad():
        res = model(input_ids=ids, output_hidden_states=True)
    for h in handles:
        h.remove()
    hidden = torch.stack([res.hidden_states[0][0]] + [o[0] for o in outs])
    return hidden, res.logits[0]


def greedy(model, ids):
    tokens = []
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        for _ in range(GREEDY_TOKENS):
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            tokens.append(int(nxt))
            out = model(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)
    return torch.tensor(tokens, dtype=torch.int64)


def main():
    for seed, (name, (cfg_cls, model_cls, extra)) in enumerate(MODELS.items()):
        torch.manual_seed(1000 + seed)
        cfg = cfg_cls(**COMMON, **extra)
        cfg._attn_implementation = "eager"
        model = model_cls(cfg).eval()
        with torch.no_grad():
            for pname, p in model.named_parameters():
                # HF initializes norms to 1 and biases to 0; perturb them so loading is tested.
                if "norm" in pname or pname.endswith(".bias"):
                    p.add_(0.1 * torch.randn_like(p))
                # Stronger block writes, so the tied-embedding models do not just echo their input
                # token and the 20 greedy tokens say something.
                if "o_proj" in pname or "down_proj" in pname:
                    p.mul_(6.0)
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        model.save_pretrained(d, safe_serialization=True)
        gen_cfg = os.path.join(d, "generation_config.json")
        if os.path.exists(gen_cfg):
            os.remove(gen_cfg)
        golden = {}
        gen = torch.Generator().manual_seed(2000 + seed)
        for i, n in enumerate(PROMPT_LENGTHS):
            ids = torch.randint(3, VOCAB, (1, n), generator=gen)
            hidden, logits = block_outputs(model, ids)
            golden[f"input_ids_{i}"] = ids[0].clone()
            golden[f"hidden_{i}"] = hidden.contiguous()
            golden[f"logits_{i}"] = logits.contiguous()
            golden[f"greedy_{i}"] = greedy(model, ids)
        save_file(golden, os.path.join(d, "golden.safetensors"))
        with open(os.path.join(d, "config.json")) as f:
            arch = json.load(f)["architectures"][0]
        print(f"{name}: {arch}, greedy_0 {golden['greedy_0'].tolist()}")


if __name__ == "__main__":
    main()
