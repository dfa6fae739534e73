"""Greedy accuracy of a model on examples: sample with the jitted sampler, score on the host."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Sequence

import jax
import numpy as np

from reft_jax.data.batching import encode_prompt
from reft_jax.data.records import PROGRAM, Example
from reft_jax.parallel.hosts import sum_over_processes
from reft_jax.rewards import RewardConfig, SandboxPool, judge
from reft_jax.sampling import Sampler, SamplingSettings


def decode_completions(tokenizer: Any, tokens, mask) -> list[str]:
    """Response text per row: the masked tokens, special tokens (EOS) dropped."""
    return [tokenizer.decode([int(t) for t, m in zip(row, row_mask) if m], skip_special_tokens=True)
            for row, row_mask in zip(tokens, mask)]


def greedy_accuracy(model, tokenizer: Any, examples: Sequence[Example], style: str, *,
                    batch_size: int, max_new_tokens: int, max_length: int | None = None,
                    chat: bool = False, program_timeout: float | None = None,
                    reward: RewardConfig | None = None,
                    pool: SandboxPool | None = None) -> dict[str, float]:
    """Share of examples whose greedy answer is correct (the reward module's `judge`), and the
    mean reward (`reward`, default the run defaults; `program_timeout` overrides its timeout).

    P-CoT programs run in `pool`; without one a pool is started for this call and closed at its
    end. Over several processes each samples its share of the examples on its own devices (the
    model must be whole on every process) and the counts are summed.
    """
    reward = reward if reward is not None else RewardConfig()
    if program_timeout is not None:
        reward = dataclasses.replace(reward, timeout=program_timeout)
    sampler = Sampler(tokenizer.eos_token_id, tokenizer.pad_token_id, max_length=max_length)
    settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=0.0)
    mine = list(examples)[jax.process_index()::jax.process_count()]
    correct = total = 0.0
    with contextlib.ExitStack() as owned:
        if pool is None and style == PROGRAM and mine:
            pool = owned.enter_context(SandboxPool(timeout=reward.timeout))
        for start in range(0, len(mine), batch_size):
            chunk = mine[start:start + batch_size]
            prompts = [encode_prompt(ex, tokenizer, style, chat) for ex in chunk]
            out = sampler(model, prompts, jax.random.key(0), settings)
            texts = decode_completions(tokenizer, out.tokens, out.mask)
            judged = judge(texts, chunk, style, reward, pool)
            correct += sum(j.correct for j in judged)
            total += sum(j.reward for j in judged)
    correct, total, n = (float(x) for x in sum_over_processes(
        np.array([correct, total, len(mine)], np.float64)))  # plain floats: they go to JSON
    return {"accuracy": correct / max(n, 1.0), "mean_reward": total / max(n, 1.0), "examples": n}
