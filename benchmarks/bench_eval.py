"""Voting@k sampling speed: our sampler (k samples per question from one prefill) against
transformers' `generate(num_return_sequences=k)`, same weights, same run.

SmolLM2-135M in float32 from the shared GGUF (or `--model`), the first `--questions` GSM8K test
questions (default 32), `--k` samples each (default 16) at temperature 1 with top_k 50 (the
paper's voting settings), `--new-tokens` tokens per sample (default 256, early stop off so both
sides generate the same number), questions in batches of `--batch` (default 4, i.e. 64 rows per
call). Each side gets one warm-up call on the first batch; the timed pass then runs every batch
once, compiles of prompt lengths not seen yet included, as an eval meets them.
Prints samples/s of both and the ratio. Last line: eval_speedup=<ratio>.
"""

from __future__ import annotations

import platform
import time

import jax

from benchmarks.common import describe_model, gsm8k_prompts, load_pair, parse_args, synchronize


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def batches(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def ours(model, tok, prompts, args) -> tuple[float, int]:
    """(samples/s, distinct prompt buckets compiled)."""
    from reft_jax.sampling import Sampler, SamplingSettings, bucket_length

    sampler = Sampler(tok.eos_token_id, tok.pad_token_id)
    settings = SamplingSettings(max_new_tokens=args.new_tokens, temperature=1.0, top_k=50,
                                num_samples=args.k, stop_at_eos=False)
    ids = [tok(p)["input_ids"] for p in prompts]
    groups = batches(ids, args.batch)
    sampler(model, groups[0], jax.random.key(0), settings)  # warm-up: compiles the first shape
    start, rows = time.perf_counter(), 0
    for i, group in enumerate(groups):
        out = sampler(model, group, jax.random.key(1 + i), settings)
        assert out.lengths.min() == args.new_tokens
        rows += out.tokens.shape[0]
    elapsed = time.perf_counter() - start
    buckets = {bucket_length(max(len(p) for p in group)) for group in groups}
    return rows / elapsed, len(buckets)


def reference(hf_model, tok, prompts, args) -> float:
    import torch

    kwargs = dict(do_sample=True, temperature=1.0, top_k=50, top_p=1.0,
                  num_return_sequences=args.k, max_new_tokens=args.new_tokens,
                  min_new_tokens=args.new_tokens, pad_token_id=tok.pad_token_id)
    groups = [tok(group, return_tensors="pt", padding=True).to(hf_model.device)
              for group in batches(prompts, args.batch)]
    with torch.no_grad():
        hf_model.generate(**groups[0], **dict(kwargs, max_new_tokens=2, min_new_tokens=2))
        synchronize()
        start, rows = time.perf_counter(), 0
        for enc in groups:
            out = hf_model.generate(**enc, **kwargs)
            assert out.shape[1] - enc["input_ids"].shape[1] == args.new_tokens
            rows += out.shape[0]
        synchronize()
    return rows / (time.perf_counter() - start)


def main():
    import torch

    args = parse_args(__doc__, questions=(32, "GSM8K test questions"),
                      k=(16, "samples per question"), **{"new-tokens": (256, "tokens per sample")},
                      batch=(4, "questions per sampler call"))
    model, tok, hf_model = load_pair(args.model)
    hf_model.eval()
    print(f"device: {jax.devices()[0].device_kind} ({cpu_model()}, {jax.device_count()} jax "
          f"device(s)), torch on {hf_model.device} ({torch.get_num_threads()} threads)")
    print(f"model: {describe_model(model)}")
    prompts = gsm8k_prompts(args.questions)
    print(f"{args.questions} questions x k={args.k} samples x {args.new_tokens} new tokens, "
          f"{args.batch} questions ({args.batch * args.k} rows) per call")
    # Each side runs all its batches in one phase (see bench_sampler: interleaving biases).
    our_sps, shapes = ours(model, tok, prompts, args)
    ref_sps = reference(hf_model, tok, prompts, args)
    ratio = our_sps / ref_sps
    print(f"ours {our_sps:8.2f} samples/s ({our_sps * args.new_tokens:8.1f} tok/s, {shapes} prompt "
          f"shape(s) compiled) | transformers generate {ref_sps:8.2f} samples/s "
          f"({ref_sps * args.new_tokens:8.1f} tok/s) | ratio {ratio:.2f}")
    print(f"eval_speedup={ratio:.2f}")


if __name__ == "__main__":
    main()
