"""Sampling speed: our jitted sampler against transformers' generate, same weights, same run.

SmolLM2-135M in float32 from the shared GGUF, GSM8K test prompts, 128 new tokens with early stop
off, temperature 1, batches 1, 16 and 64. Prints tokens/s of both, the ratio, compile time and
our share of the compute bound (measured matmul FLOP/s over FLOPs per generated token).
Last line: sampler_speedup_b64=<ratio>.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from benchmarks.common import GGUF, gsm8k_prompts, measured_peak_flops, require_shared

NEW_TOKENS = 128
BATCHES = (1, 16, 64)


def ours(model, tok, prompts, key):
    from reft_jax.sampling import Sampler, SamplingSettings

    sampler = Sampler(tok.eos_token_id, tok.pad_token_id)
    settings = SamplingSettings(max_new_tokens=NEW_TOKENS, temperature=1.0, stop_at_eos=False)
    ids = [tok(p)["input_ids"] for p in prompts]
    start = time.perf_counter()
    out = sampler(model, ids, key, settings)  # compiles
    first = time.perf_counter() - start
    start = time.perf_counter()
    out = sampler(model, ids, jax.random.fold_in(key, 1), settings)
    run = time.perf_counter() - start
    assert out.lengths.min() == NEW_TOKENS
    return out.tokens.size / run, first - run


def reference(hf_model, tok, prompts):
    import torch

    enc = tok(prompts, return_tensors="pt", padding=True)
    kwargs = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=True,
                  temperature=1.0, top_k=0, top_p=1.0, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        hf_model.generate(**enc, max_new_tokens=2, do_sample=True, pad_token_id=tok.pad_token_id)
        start = time.perf_counter()
        out = hf_model.generate(**enc, **kwargs)
        run = time.perf_counter() - start
    return (out.shape[1] - enc["input_ids"].shape[1]) * len(prompts) / run


def flops_per_token(cfg, context: int) -> float:
    attention = 4 * cfg.num_layers * cfg.num_heads * cfg.head_dim * context
    return 2 * cfg.num_params + attention


def main():
    import torch
    from transformers import AutoModelForCausalLM

    from reft_jax.models import load_pretrained

    require_shared()
    model, tok = load_pretrained(GGUF)
    hf_model = AutoModelForCausalLM.from_pretrained(GGUF.parent, gguf_file=GGUF.name,
                                                    dtype=torch.float32).eval()
    peak = measured_peak_flops()
    print(f"device: {jax.devices()[0].device_kind}, torch threads {torch.get_num_threads()}, "
          f"measured float32 matmul peak {peak / 1e9:.0f} GFLOP/s")
    prompts = gsm8k_prompts(max(BATCHES))
    mean_prompt = float(np.mean([len(tok(p)["input_ids"]) for p in prompts]))
    bound = peak / flops_per_token(model.config, mean_prompt + NEW_TOKENS / 2)
    ratio = None
    for batch in BATCHES:
        our_tps, compile_s = ours(model, tok, prompts[:batch], jax.random.key(batch))
        ref_tps = reference(hf_model, tok, prompts[:batch])
        ratio = our_tps / ref_tps
        print(f"batch {batch:3d}: ours {our_tps:7.1f} tok/s (compile {compile_s:5.1f}s, "
              f"{100 * our_tps / bound:4.1f}% of the {bound:.0f} tok/s compute bound) | "
              f"transformers generate {ref_tps:7.1f} tok/s | ratio {ratio:.2f}")
    print(f"sampler_speedup_b64={ratio:.2f}")


if __name__ == "__main__":
    main()
