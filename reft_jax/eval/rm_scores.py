"""Reward-model scores of (question, sampled reasoning) sequences, batched and jitted.

A sequence is the prompt's ids (as the sampler saw them), the response text tokenized on its own,
and EOS: the same layout SFT trains on, used alike when the reward model is trained on the
sampled set and when it scores an eval's samples, so it never meets a tokenization at test time
it did not learn from. Too long a sequence keeps its last `max_length` tokens: the end holds the
final answer, which decides correctness.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from flax import nnx

from reft_jax.models.reward_model import RewardModel
from reft_jax.sampling import bucket_length

LENGTH_MULTIPLE = 32  # sequence widths are rounded up to this, so few shapes compile


def classifier_ids(prompt_ids: Sequence[int], text: str, tokenizer: Any,
                   max_length: int) -> list[int]:
    """prompt + tokens of `text` + EOS, cut to its last `max_length` tokens."""
    response = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return (list(prompt_ids) + response + [tokenizer.eos_token_id])[-max_length:]


def right_padded(sequences: Sequence[Sequence[int]], pad_id: int, rows: int | None = None,
                 multiple: int = LENGTH_MULTIPLE) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), right-padded to a multiple of `multiple` columns. Rows past
    the sequences (up to `rows`) hold one real pad token, so no row is wholly masked."""
    rows = rows if rows is not None else len(sequences)
    width = -(-max(len(s) for s in sequences) // multiple) * multiple
    ids = np.full((rows, width), pad_id, np.int32)
    mask = np.zeros((rows, width), np.int32)
    mask[len(sequences):, 0] = 1
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
    return ids, mask


def _probs(graphdef, state, ids, mask):
    return nnx.merge(graphdef, state).prob_correct(ids, mask)


_scorer = jax.jit(_probs, static_argnums=0)


def score_sequences(rm: RewardModel, sequences: Sequence[Sequence[int]], pad_id: int,
                    rows: int) -> np.ndarray:
    """P(correct) per sequence, in the given order. Sequences are scored sorted by length in
    batches of at most `rows` (fewer, rounded to a power of two, for a small remainder), so a
    batch pads little and a run compiles a handful of shapes."""
    if not sequences:
        return np.zeros((0,), np.float32)
    graphdef, state = nnx.split(rm)
    order = np.argsort([len(s) for s in sequences], kind="stable")
    out = np.empty(len(sequences), np.float32)
    for start in range(0, len(order), rows):
        chosen = order[start:start + rows]
        n_rows = min(rows, bucket_length(len(chosen), multiple=rows))
        ids, mask = right_padded([sequences[i] for i in chosen], pad_id, n_rows)
        out[chosen] = np.asarray(jax.device_get(_scorer(graphdef, state, ids, mask)))[:len(chosen)]
    return out
