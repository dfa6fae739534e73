"""Greedy accuracy of a model on examples: sample with the jitted sampler, score on the host."""

from __future__ import annotations

from typing import Any, Sequence

import jax

from reft_jax.data.batching import encode_prompt
from reft_jax.data.records import Example
from reft_jax.rewards import RewardConfig, reward_fn
from reft_jax.sampling import Sampler, SamplingSettings


def decode_completions(tokenizer: Any, tokens, mask) -> list[str]:
    """Response text per row: the masked tokens, special tokens (EOS) dropped."""
    return [tokenizer.decode([int(t) for t, m in zip(row, row_mask) if m], skip_special_tokens=True)
            for row, row_mask in zip(tokens, mask)]


def greedy_accuracy(model, tokenizer: Any, examples: Sequence[Example], style: str, *,
                    batch_size: int, max_new_tokens: int, max_length: int | None = None,
                    chat: bool = False, program_timeout: float = 10.0) -> dict[str, float]:
    """Share of examples whose greedy answer is correct (reward 1), and the mean reward."""
    sampler = Sampler(tokenizer.eos_token_id, tokenizer.pad_token_id, max_length=max_length)
    settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=0.0)
    rewards: list[float] = []
    for start in range(0, len(examples), batch_size):
        chunk = list(examples[start:start + batch_size])
        prompts = [encode_prompt(ex, tokenizer, style, chat) for ex in chunk]
        out = sampler(model, prompts, jax.random.key(0), settings)
        texts = decode_completions(tokenizer, out.tokens, out.mask)
        rewards += reward_fn(texts, chunk, style, RewardConfig(timeout=program_timeout))
    n = max(len(rewards), 1)
    return {"accuracy": sum(r == 1.0 for r in rewards) / n, "mean_reward": sum(rewards) / n,
            "examples": float(len(rewards))}
