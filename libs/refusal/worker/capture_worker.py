"""Transformers capture worker for architectures the built-in engine lacks.

Reads one JSON job from stdin (or the ABL_CAPTURE_JOB environment variable), captures the
residual stream at the last prompt token of every prompt, and writes one safetensors file per
bucket (`residuals` [prompts, layers+1, hidden] f32) plus `capture.json`. Progress and the
result are JSON lines on stdout; errors are one JSON line {"type": "error", ...} and exit
status 1.

Job:
  {
    "model": {"dir": "/path"} | {"urls": {"config.json": "https://presigned...", ...}},
    "buckets": {"refuse": [[{"role": "user", "content": "..."}], ...], "comply": [...]},
    "chat_template": "optional Jinja override",
    "batch_size": 8,
    "max_positions": 0,          # 0: the model's max_position_embeddings
    "output": {"dir": "/path"} | {"put_urls": {"refuse.safetensors": "https://...", ...}}
  }

Residual layers match the built-in engine: index 0 is the embedding output and index k the output
of block k. transformers' last hidden state is taken after the final norm, so the last block's
output is read with a forward hook instead (reference/abliteration.md §2.4, FailSpy #24).
"""
import json
import os
import struct
import sys
import tempfile
import urllib.request

MAX_DOWNLOAD_BYTES = 64 * 1024**3  # refuse anything larger than a 64 GiB file: a wrong URL
CHUNK = 8 * 1024 * 1024


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def download(urls, into):
    for name, url in urls.items():
        if os.path.isabs(name) or ".." in name.split("/"):
            raise ValueError(f"model file name {name!r} escapes the folder")
        path = os.path.join(into, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        total = 0
        with urllib.request.urlopen(url) as res, open(path + ".part", "wb") as f:
            while True:
                chunk = res.read(CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > MAX_DOWNLOAD_BYTES:
                    raise ValueError(f"{name} exceeds {MAX_DOWNLOAD_BYTES} bytes")
                f.write(chunk)
        os.replace(path + ".part", path)
        emit({"type": "progress", "step": "download", "file": name, "bytes": total})


def safetensors_bytes(array):
    """One F32 tensor named `residuals`, header padded to 8 bytes like the reference writer."""
    import numpy as np

    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    header = json.dumps(
        {"residuals": {"dtype": "F32", "shape": list(array.shape), "data_offsets": [0, len(data)]}},
        separators=(",", ":"),
    ).encode()
    header += b" " * ((8 - len(header) % 8) % 8)
    return struct.pack("<Q", len(header)) + header + data


def put(url, body):
    req = urllib.request.Request(url, data=body, method="PUT", headers={"content-length": str(len(body))})
    with urllib.request.urlopen(req) as res:
        if res.status // 100 != 2:
            raise RuntimeError(f"PUT answered HTTP {res.status}")


def capture(job):
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = None
    model_spec = job["model"]
    if "dir" in model_spec:
        model_dir = model_spec["dir"]
    else:
        tmp = tempfile.mkdtemp(prefix="abl-capture-model-")
        download(model_spec["urls"], tmp)
        model_dir = tmp
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(model_dir)
    if job.get("chat_template"):
        tok.chat_template = job["chat_template"]
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).to(device).eval()
    cfg = model.config
    max_positions = job.get("max_positions") or getattr(cfg, "max_position_embeddings", 0) or 10**9
    layers_mod = model.get_decoder().layers
    last_out = {}

    def hook(_mod, _inp, out):
        last_out["h"] = out[0] if isinstance(out, tuple) else out

    handle = layers_mod[-1].register_forward_hook(hook)
    batch_size = int(job.get("batch_size") or 8)
    outputs = {}
    meta = {"layers": len(layers_mod) + 1, "hidden": cfg.hidden_size, "chat_template": tok.chat_template or ""}
    for bucket, conversations in job["buckets"].items():
        ids = []
        for i, messages in enumerate(conversations):
            t = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if hasattr(t, "keys"):
                t = t["input_ids"]
            if len(t) > max_positions:
                raise ValueError(f"{bucket} prompt {i} has {len(t)} tokens, beyond the model's {max_positions}-position context")
            ids.append(list(t))
        rows = np.zeros((len(ids), meta["layers"], meta["hidden"]), dtype=np.float32)
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            width = max(len(x) for x in chunk)
            # Right padding with an explicit mask; the last real token of row b is at len-1.
            input_ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for b, x in enumerate(chunk):
                input_ids[b, : len(x)] = torch.tensor(x)
                mask[b, : len(x)] = 1
            with torch.no_grad():
                out = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
            states = list(out.hidden_states[:-1]) + [last_out["h"]]
            for b, x in enumerate(chunk):
                for layer, h in enumerate(states):
                    rows[start + b, layer] = h[b, len(x) - 1].float().cpu().numpy()
            emit({"type": "progress", "bucket": bucket, "done": min(start + batch_size, len(ids)), "total": len(ids)})
        outputs[bucket] = rows
    handle.remove()

    out_spec = job["output"]
    files = {f"{b}.safetensors": safetensors_bytes(rows) for b, rows in outputs.items()}
    files["capture.json"] = json.dumps({**meta, "prompts": {b: int(r.shape[0]) for b, r in outputs.items()}}).encode()
    if "dir" in out_spec:
        os.makedirs(out_spec["dir"], exist_ok=True)
        # capture.json last: its presence says the bucket files are complete.
        for name in sorted(files, key=lambda n: n == "capture.json"):
            path = os.path.join(out_spec["dir"], name)
            with open(path + ".tmp", "wb") as f:
                f.write(files[name])
            os.replace(path + ".tmp", path)
    else:
        for name in sorted(files, key=lambda n: n == "capture.json"):
            url = out_spec["put_urls"].get(name)
            if not url:
                raise ValueError(f"output.put_urls has no URL for {name}")
            put(url, files[name])
    emit({"type": "done", **meta, "prompts": {b: int(r.shape[0]) for b, r in outputs.items()}})


def main():
    try:
        # A Kubernetes Job has no stdin: the launcher passes the job in ABL_CAPTURE_JOB instead.
        raw = os.environ.get("ABL_CAPTURE_JOB") or sys.stdin.read()
        capture(json.loads(raw))
    except Exception as err:  # one clear line for the caller, then a failing exit status
        emit({"type": "error", "message": f"{type(err).__name__}: {err}"})
        sys.exit(1)


if __name__ == "__main__":
    main()
