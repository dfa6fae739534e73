"""Sampling speed: our jitted sampler against transformers' generate, same weights, same run.

SmolLM2-135M in float32 from the shared GGUF (or `--model`), GSM8K test prompts, 128 new tokens
with early stop off, temperature 1, batches 1, 16 and 64, the best of two timed runs per side.
Prints tokens/s of both, the ratio, compile time, our share of the compute bound (measured matmul
FLOP/s over FLOPs per generated token) and, on a GPU, of the memory-bandwidth bound (weights
plus the KV cache read per step).
Last line: sampler_speedup_b64=<ratio>.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from benchmarks.common import (describe_model, gsm8k_prompts, load_pair, measured_bandwidth,
                               measured_peak_flops, on_gpu, parse_args, synchronize,
                               torch_device)

NEW_TOKENS = 128
BATCHES = (1, 16, 64)
REPEATS = 2  # timed runs per side; the fastest counts (the least disturbed on a shared machine)


def ours(model, tok, prompts, key):
    from reft_jax.sampling import Sampler, SamplingSettings

    sampler = Sampler(tok.eos_token_id, tok.pad_token_id)
    settings = SamplingSettings(max_new_tokens=NEW_TOKENS, temperature=1.0, stop_at_eos=False)
    ids = [tok(p)["input_ids"] for p in prompts]
    start = time.perf_counter()
    out = sampler(model, ids, key, settings)  # compiles
    first = time.perf_counter() - start
    runs = []
    for repeat in range(REPEATS):
        start = time.perf_counter()
        out = sampler(model, ids, jax.random.fold_in(key, 1 + repeat), settings)
        runs.append(time.perf_counter() - start)
    assert out.lengths.min() == NEW_TOKENS
    return out.tokens.size / min(runs), first - runs[0]


def reference(hf_model, tok, prompts):
    import torch

    enc = tok(prompts, return_tensors="pt", padding=True).to(torch_device())
    kwargs = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=True,
                  temperature=1.0, top_k=0, top_p=1.0, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        hf_model.generate(**enc, max_new_tokens=2, do_sample=True, pad_token_id=tok.pad_token_id)
        runs = []
        for _ in range(REPEATS):
            synchronize()
            start = time.perf_counter()
            out = hf_model.generate(**enc, **kwargs)
            synchronize()
            runs.append(time.perf_counter() - start)
    return (out.shape[1] - enc["input_ids"].shape[1]) * len(prompts) / min(runs)


def flops_per_token(cfg, context: float) -> float:
    attention = 4 * cfg.num_layers * cfg.num_heads * cfg.head_dim * context
    return 2 * cfg.num_params + attention


def bytes_per_step(cfg, batch: int, context: float, itemsize: int = 4) -> float:
    """Weights once plus every row's keys and values, per decode step."""
    kv = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * context * batch
    return itemsize * (cfg.num_params + kv)


def main():
    import torch

    args = parse_args(__doc__)
    model, tok, hf_model = load_pair(args.model)
    hf_model.eval()
    peak = measured_peak_flops()
    bandwidth = measured_bandwidth() if on_gpu() else None
    print(f"device: {jax.devices()[0].device_kind}, torch on {torch_device()} "
          f"({torch.get_num_threads()} threads), measured float32 matmul peak "
          f"{peak / 1e9:.0f} GFLOP/s" + (f", copy bandwidth {bandwidth / 1e9:.0f} GB/s"
                                         if bandwidth else ""))
    print(f"model: {describe_model(model)}")
    prompts = gsm8k_prompts(max(BATCHES))
    mean_prompt = float(np.mean([len(tok(p)["input_ids"]) for p in prompts]))
    context = mean_prompt + NEW_TOKENS / 2
    bound = peak / flops_per_token(model.config, context)
    # Each side runs all its batches in one phase: right after a torch generate our next call
    # measured 3% slower (torch's threads still winding down), so interleaving would bias.
    our_runs = {b: ours(model, tok, prompts[:b], jax.random.key(b)) for b in BATCHES}
    ratio = None
    for batch in BATCHES:
        our_tps, compile_s = our_runs[batch]
        ref_tps = reference(hf_model, tok, prompts[:batch])
        ratio = our_tps / ref_tps
        memory = ""
        if bandwidth:
            memory_bound = batch * bandwidth / bytes_per_step(model.config, batch, context)
            memory = f", {100 * our_tps / memory_bound:4.1f}% of the {memory_bound:.0f} tok/s memory bound"
        print(f"batch {batch:3d}: ours {our_tps:7.1f} tok/s (compile {compile_s:5.1f}s, "
              f"{100 * our_tps / bound:4.1f}% of the {bound:.0f} tok/s compute bound{memory}) | "
              f"transformers generate {ref_tps:7.1f} tok/s | ratio {ratio:.2f}")
    print(f"sampler_speedup_b64={ratio:.2f}")


if __name__ == "__main__":
    main()
