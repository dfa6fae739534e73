"""Greedy accuracy of a model on examples: sample with the jitted sampler, score on the host."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np

from reft_jax.data.batching import encode_prompt
from reft_jax.data.records import Example
from reft_jax.parallel.hosts import sum_over_processes
from reft_jax.rewards import RewardConfig, reward_fn
from reft_jax.sampling import Sampler, SamplingSettings


def decode_completions(tokenizer: Any, tokens, mask) -> list[str]:
    """Response text per row: the masked tokens, special tokens (EOS) dropped."""
    return [tokenizer.decode([int(t) for t, m in zip(row, row_mask) if m], skip_special_tokens=True)
            for row, row_mask in zip(tokens, mask)]


def greedy_accuracy(model, tokenizer: Any, examples: Sequence[Example], style: str, *,
                    batch_size: int, max_new_tokens: int, max_length: int | None = None,
                    chat: bool = False, program_timeout: float = 10.0) -> dict[str, float]:
    """Share of examples whose greedy answer is correct (reward 1), and the mean reward.

    Over several processes each samples its share of the examples on its own devices (the model
    must be whole on every process) and the counts are summed.
    """
    sampler = Sampler(tokenizer.eos_token_id, tokenizer.pad_token_id, max_length=max_length)
    settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=0.0)
    mine = list(examples)[jax.process_index()::jax.process_count()]
    rewards: list[float] = []
    for start in range(0, len(mine), batch_size):
        chunk = mine[start:start + batch_size]
        prompts = [encode_prompt(ex, tokenizer, style, chat) for ex in chunk]
        out = sampler(model, prompts, jax.random.key(0), settings)
        texts = decode_completions(tokenizer, out.tokens, out.mask)
        rewards += reward_fn(texts, chunk, style, RewardConfig(timeout=program_timeout))
    correct, total, n = sum_over_processes(
        np.array([sum(r == 1.0 for r in rewards), sum(rewards), len(rewards)], np.float64))
    return {"accuracy": correct / max(n, 1), "mean_reward": total / max(n, 1), "examples": n}
