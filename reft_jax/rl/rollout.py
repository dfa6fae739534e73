"""One rollout batch: sample responses, turn them into text, judge them, lay them out as arrays.

The arrays are what every RL pass reads: each row is its left-padded prompt followed by its
response, right-padded, so column j of the response part is the j-th response token of every
row (the "response-aligned" layout of `reft_jax.rl`). Widths are bucketed, so a run compiles a
few shapes, not one per batch.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from reft_jax.data.batching import encode_prompt
from reft_jax.data.records import Example
from reft_jax.rewards import Judged
from reft_jax.sampling import Sampler, SamplingSettings, bucket_length

Judge = Callable[[list[str], list[Example]], list[Judged]]
RESPONSE_BUCKET = 32


@dataclasses.dataclass
class Rollout:
    examples: list[Example]  # one per row, prompt-major: rows i*n .. i*n+n-1 answer question i
    input_ids: np.ndarray  # (rows, P + T) int32: left-padded prompt, then the response
    attention_mask: np.ndarray  # (rows, P + T) int32
    mask: np.ndarray  # (rows, T) float32: 1 on response tokens, the EOS included
    texts: list[str]
    judged: list[Judged]
    truncated: np.ndarray  # (rows,) bool: stopped by the length limit, not by EOS
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # sample / score

    @property
    def width(self) -> int:
        return self.mask.shape[1]

    @property
    def scores(self) -> np.ndarray:
        return np.array([j.reward for j in self.judged], np.float32)

    @property
    def correct(self) -> np.ndarray:
        return np.array([j.correct for j in self.judged], bool)

    @property
    def extractable(self) -> np.ndarray:
        return np.array([j.extractable for j in self.judged], bool)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "mask": self.mask}


def encode_prompts(examples: Sequence[Example], tokenizer: Any, style: str, chat: bool,
                   max_prompt_length: int) -> list[list[int]]:
    """Rollout prompts; one longer than max_prompt_length keeps its last tokens (the end, with
    "Answer reasoning:" and the program header, is what the response continues)."""
    prompts = [encode_prompt(ex, tokenizer, style, chat) for ex in examples]
    return [p[-max_prompt_length:] for p in prompts]


def decode_responses(tokenizer: Any, tokens: np.ndarray, mask: np.ndarray) -> list[str]:
    """Response text per row: the masked tokens, special tokens (EOS) dropped."""
    return [tokenizer.decode([int(t) for t, m in zip(row, row_mask) if m], skip_special_tokens=True)
            for row, row_mask in zip(tokens, mask)]


def lay_out(prompts: Sequence[Sequence[int]], tokens: np.ndarray, mask: np.ndarray,
            samples: int, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, attention_mask, response mask) for prompt-major samples."""
    rows = len(prompts) * samples
    width_p = bucket_length(max(len(p) for p in prompts))
    longest = int(mask.sum(-1).max())
    width_t = min(tokens.shape[1], -(-longest // RESPONSE_BUCKET) * RESPONSE_BUCKET)
    ids = np.full((rows, width_p + width_t), pad_id, np.int32)
    attention = np.zeros((rows, width_p + width_t), np.int32)
    for row in range(rows):
        prompt = prompts[row // samples]
        ids[row, width_p - len(prompt):width_p] = prompt
        attention[row, width_p - len(prompt):width_p] = 1
    response_mask = mask[:, :width_t].astype(np.int32)
    ids[:, width_p:] = np.where(response_mask > 0, tokens[:, :width_t], pad_id)
    attention[:, width_p:] = response_mask
    return ids, attention, response_mask.astype(np.float32)


def collect(sampler: Sampler, model, tokenizer: Any, examples: Sequence[Example], style: str,
            settings: SamplingSettings, rng: jax.Array, judge: Judge, chat: bool = False,
            max_prompt_length: int = 300) -> Rollout:
    """Sample `settings.num_samples` responses per example, judge them, lay them out."""
    start = time.perf_counter()
    prompts = encode_prompts(examples, tokenizer, style, chat, max_prompt_length)
    out = sampler(model, prompts, rng, settings)
    sampled = time.perf_counter()
    rows = [ex for ex in examples for _ in range(settings.num_samples)]
    texts = decode_responses(tokenizer, out.tokens, out.mask)
    judged = judge(texts, rows)
    seconds = {"sample": sampled - start, "score": time.perf_counter() - sampled}
    ids, attention, mask = lay_out(prompts, out.tokens, out.mask, settings.num_samples,
                                   tokenizer.pad_token_id)
    last = np.take_along_axis(out.tokens, np.maximum(out.lengths - 1, 0)[:, None], axis=1)[:, 0]
    truncated = last != tokenizer.eos_token_id
    return Rollout(rows, ids, attention, mask, texts, judged, truncated, seconds)
