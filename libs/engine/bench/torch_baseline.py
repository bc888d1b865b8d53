#!/usr/bin/env python3
"""transformers-on-torch-CPU baseline for `npm run bench:engine`. Reads a JSON job on stdin
({"model", "threads", "repeats", "prefill": {"prompts", "batch"}, "gen": [{"prompts", "tokens"}]}),
runs the same workloads as libs/engine/bench/engine-bench.ts, warm (one untimed run first),
and prints one JSON line with median seconds per workload and peak RSS.
Needs `pip install torch transformers safetensors`; benchmarks only, never CI."""
import json
import resource
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def pad_right(prompts):
    n = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), n), dtype=torch.long)
    mask = torch.zeros((len(prompts), n), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = torch.tensor(p)
        mask[i, : len(p)] = 1
    return ids, mask


def pad_left(prompts):
    n = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), n), dtype=torch.long)
    mask = torch.zeros((len(prompts), n), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, n - len(p) :] = torch.tensor(p)
        mask[i, n - len(p) :] = 1
    return ids, mask


def timed(fn, repeats):
    """Median wall seconds, all wall seconds, median CPU seconds (all threads of the process)."""
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(times), times, statistics.median(cpu)


def main():
    job = json.load(sys.stdin)
    torch.set_num_threads(job["threads"])
    model = AutoModelForCausalLM.from_pretrained(job["model"], dtype=torch.float32).eval()
    out = {"torch": torch.__version__}

    prompts, batch = job["prefill"]["prompts"], job["prefill"]["batch"]

    def prefill():
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        with torch.inference_mode():
            for s in range(0, len(order), batch):
                chunk = [prompts[i] for i in order[s : s + batch]]
                ids, mask = pad_right(chunk)
                res = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
                last = mask.sum(1) - 1
                rows = torch.arange(len(chunk))
                # all layers at the last prompt token, as f32 numpy, like the engine returns
                [h[rows, last].numpy() for h in res.hidden_states]

    out["prefill_s"], out["prefill_all_s"], out["prefill_cpu_s"] = timed(prefill, job["repeats"])

    out["gen"] = []
    for g in job["gen"]:
        ids, mask = pad_left(g["prompts"])

        def gen():
            with torch.inference_mode():
                model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    do_sample=False,
                    max_new_tokens=g["tokens"],
                    min_new_tokens=g["tokens"],
                    pad_token_id=0,
                )

        med, all_, cpu = timed(gen, job["repeats"])
        out["gen"].append({"s": med, "all_s": all_, "cpu_s": cpu})
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()
