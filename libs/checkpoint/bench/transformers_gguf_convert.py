"""Baseline for bench:gguf-convert: what a user would otherwise run to get an HF folder from a GGUF.

transformers dequantizes the GGUF while loading it (`from_pretrained(..., gguf_file=...)`); a model
loaded that way refuses `save_pretrained`, so the state dict is written with safetensors directly.
Prints one JSON line: {"seconds": load+save wall time, "peak_rss_bytes": ...}.
"""

import json
import os
import resource
import sys
import time

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf),
                                             dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
os.makedirs(out, exist_ok=True)
tied = model.config.tie_word_embeddings
state = {k: v.contiguous() for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
save_file(state, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
model.config.save_pretrained(out)
tok.save_pretrained(out)
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
