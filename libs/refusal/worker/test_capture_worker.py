"""Checks capture_worker.py against transformers directly, on a tiny random Llama.

Run: pip install torch transformers numpy && python3 libs/refusal/worker/test_capture_worker.py
(Not part of `npm test`, which must not need torch.)
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from tokenizers import Tokenizer, models, pre_tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"


def read_residuals(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        info = header["residuals"]
        data = np.frombuffer(f.read(), dtype="<f4")
    return data.reshape(info["shape"])


class CaptureWorkerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                          num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
        self.model = LlamaForCausalLM(cfg).eval()
        self.dir = os.path.join(self.tmp.name, "model")
        self.model.save_pretrained(self.dir)
        vocab = {chr(97 + i): i for i in range(26)}
        vocab.update({"<unk>": 26, "<|user|>": 27, "<|system|>": 28, "<|assistant|>": 29, "\n": 30, " ": 31})
        t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        t.pre_tokenizer = pre_tokenizers.Split("", "isolated")
        tok = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>")
        tok.add_special_tokens({"additional_special_tokens": ["<|user|>", "<|system|>", "<|assistant|>"]})
        tok.chat_template = TEMPLATE
        tok.save_pretrained(self.dir)
        self.tok = tok

    def tearDown(self):
        self.tmp.cleanup()

    def run_worker(self, job):
        return subprocess.run([sys.executable, os.path.join(HERE, "capture_worker.py")], input=json.dumps(job),
                              capture_output=True, text=True, check=False)

    def test_matches_transformers_block_outputs(self):
        convs = {"refuse": [[{"role": "user", "content": "list files"}], [{"role": "user", "content": "ls"}]],
                 "comply": [[{"role": "system", "content": "agent"}, {"role": "user", "content": "list files"}]]}
        out = os.path.join(self.tmp.name, "out")
        r = self.run_worker({"model": {"dir": self.dir}, "buckets": convs, "batch_size": 2, "output": {"dir": out}})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        self.assertEqual(lines[-1]["type"], "done")
        self.assertEqual(lines[-1]["layers"], 4)
        got = read_residuals(os.path.join(out, "refuse.safetensors"))
        self.assertEqual(got.shape, (2, 4, 16))
        captured = {}
        hooks = [layer.register_forward_hook(lambda m, i, o, k=k: captured.__setitem__(k, o[0] if isinstance(o, tuple) else o))
                 for k, layer in enumerate(self.model.model.layers)]
        for p, msgs in enumerate(convs["refuse"]):
            ids = self.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
            if hasattr(ids, "keys"):
                ids = ids["input_ids"]
            with torch.no_grad():
                o = self.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
            np.testing.assert_allclose(got[p, 0], o.hidden_states[0][0, -1].numpy(), atol=1e-5)
            for k in range(3):
                np.testing.assert_allclose(got[p, k + 1], captured[k][0, -1].numpy(), atol=1e-5)
        for h in hooks:
            h.remove()
        self.assertTrue(os.path.exists(os.path.join(out, "capture.json")))

    def test_prompt_beyond_context_is_a_clear_error(self):
        convs = {"refuse": [[{"role": "user", "content": "a" * 100}]], "comply": [[{"role": "user", "content": "b"}]]}
        r = self.run_worker({"model": {"dir": self.dir}, "buckets": convs, "output": {"dir": os.path.join(self.tmp.name, "o")}})
        self.assertEqual(r.returncode, 1)
        err = json.loads(r.stdout.splitlines()[-1])
        self.assertIn("refuse prompt 0 has 103 tokens, beyond the model's 64-position context", err["message"])
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "o", "capture.json")))


if __name__ == "__main__":
    unittest.main()
