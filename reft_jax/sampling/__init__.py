"""Sampling from a CausalLM: `sampler.py` (jitted prefill, then a `lax.while_loop` decode over a
preallocated KV cache) and `packing.py` (prompts packed side by side for the prefill)."""

from reft_jax.sampling.packing import PackedPrompts, pack_prompts
from reft_jax.sampling.sampler import (OUT_MAJOR_MIN_ROWS, Sampler, SampleOutput, SamplingSettings,
                                       bucket_length, choose_tokens, filter_logits,
                                       sample_inverse_cdf, token_logprobs)

__all__ = ["OUT_MAJOR_MIN_ROWS", "PackedPrompts", "SampleOutput", "Sampler", "SamplingSettings",
           "bucket_length", "choose_tokens", "filter_logits", "pack_prompts", "sample_inverse_cdf",
           "token_logprobs"]
