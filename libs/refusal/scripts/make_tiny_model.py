"""Writes fixtures/tiny-llama: a random 2-layer Llama (vocab 512, hidden 32) with the engine's
tiny-llama tokenizer, for the built-in engine adapter tests. Weights are random: it checks
plumbing (shapes, capture layout, ablation hook), not model behaviour.

Run: pip install torch transformers && python3 libs/refusal/scripts/make_tiny_model.py
"""
import os
import shutil

import torch
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "tiny-llama")
TOK = os.path.join(HERE, "..", "..", "engine", "fixtures", "tokenizers", "tiny-llama")

torch.manual_seed(7)
cfg = LlamaConfig(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
model = LlamaForCausalLM(cfg).eval()
tmp = OUT + ".tmp"
shutil.rmtree(tmp, ignore_errors=True)
model.save_pretrained(tmp, safe_serialization=True)
for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]:
    shutil.copy(os.path.join(TOK, f), os.path.join(tmp, f))
shutil.rmtree(OUT, ignore_errors=True)
os.replace(tmp, OUT)
