"""Token sequences for SFT and RL, and length-bucketed SFT batches.

Tokenization at the prompt/response boundary: the prompt (with the P-CoT header, exactly as the
RL rollouts build it) is tokenized on its own, the response on its own, and the two id lists
are concatenated, then EOS appended. RL samples continue from the very same prompt ids, so the
model sees identical tokens at the boundary in SFT and in rollouts. (Tokenizing prompt + target
as one string, as the reference does for SFT, can merge tokens across the boundary that a
rollout never produces.)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from reft_jax.data.prompts import build_rl_prompt, build_target, program_header
from reft_jax.data.records import PROGRAM, DataError, Example


def encode_prompt(example: Example, tokenizer: Any, style: str, chat: bool = False) -> list[int]:
    """The ids a rollout starts from (for P-CoT, the program header included)."""
    text = build_rl_prompt(example, style, tokenizer if chat else None)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclasses.dataclass(frozen=True)
class Encoded:
    ids: tuple[int, ...]
    target_start: int  # the loss covers ids[target_start:], EOS included


def encode_sft(example: Example, tokenizer: Any, style: str, chat: bool = False) -> Encoded:
    prompt = encode_prompt(example, tokenizer, style, chat)
    target = build_target(example, style)
    if style == PROGRAM:
        header = program_header(example.question)
        if target.startswith(header):
            target = target[len(header):]
        else:  # the program's docstring differs from the question: learn the whole program
            prompt = encode_prompt(example, tokenizer, "nl", chat)
    response = list(tokenizer(target, add_special_tokens=False)["input_ids"])
    return Encoded(tuple(prompt + response + [tokenizer.eos_token_id]), len(prompt))


def encode_all(examples: Sequence[Example], tokenizer: Any, style: str, max_length: int,
               chat: bool = False, log=print) -> list[Encoded]:
    """Encode every example; drop (and count, loudly) those longer than max_length."""
    encoded = [encode_sft(ex, tokenizer, style, chat) for ex in examples]
    kept = [e for e in encoded if len(e.ids) <= max_length]
    if len(kept) < len(encoded):
        log(f"warning: {len(encoded) - len(kept)} of {len(encoded)} examples are longer than "
            f"max_length={max_length} tokens and were left out")
    if not kept:
        raise DataError("no training examples left (empty dataset, or all longer than max_length)")
    return kept


class SFTBatches:
    """Deterministic, length-bucketed batches: the order of epoch e depends only on (seed, e),
    so a resumed run sees exactly the batches the interrupted one would have."""

    def __init__(self, encoded: list[Encoded], batch_size: int, grad_accum: int, seed: int,
                 pad_id: int, length_multiple: int = 32, bucket_batches: int = 32):
        if batch_size > len(encoded):
            raise DataError(f"batch size {batch_size} is larger than the dataset ({len(encoded)} "
                            "examples)")
        if batch_size % grad_accum:
            raise DataError(f"batch size {batch_size} is not divisible by grad_accum {grad_accum}")
        self.encoded, self.batch_size, self.grad_accum = encoded, batch_size, grad_accum
        self.seed, self.pad_id = seed, pad_id
        self.length_multiple, self.bucket_batches = length_multiple, bucket_batches

    @property
    def steps_per_epoch(self) -> int:
        return len(self.encoded) // self.batch_size

    def epoch_order(self, epoch: int) -> list[np.ndarray]:
        """Shuffle, sort by length inside chunks of `bucket_batches` batches, shuffle batches."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.encoded))[: self.steps_per_epoch * self.batch_size]
        chunk = self.batch_size * self.bucket_batches
        lengths = np.array([len(e.ids) for e in self.encoded])
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start:start + chunk]
            part = part[np.argsort(lengths[part], kind="stable")]
            batches += [part[i:i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def make_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Arrays of shape (grad_accum, micro_batch, length), right-padded to a bucketed length."""
        seqs = [self.encoded[i] for i in indices]
        longest = max(len(e.ids) for e in seqs)
        width = -(-longest // self.length_multiple) * self.length_multiple
        ids = np.full((len(seqs), width), self.pad_id, np.int32)
        attention = np.zeros((len(seqs), width), np.int32)
        loss = np.zeros((len(seqs), width), np.int32)
        for row, e in enumerate(seqs):
            ids[row, :len(e.ids)] = e.ids
            attention[row, :len(e.ids)] = 1
            loss[row, e.target_start:len(e.ids)] = 1
        shape = (self.grad_accum, len(seqs) // self.grad_accum, width)
        return {"input_ids": ids.reshape(shape), "attention_mask": attention.reshape(shape),
                "loss_mask": loss.reshape(shape)}


def split_validation(examples: Sequence[Example], fraction: float, seed: int):
    """(train, validation): a seeded random `fraction` of the training split held out."""
    if not examples:
        raise DataError("the training split is empty")
    n_val = int(round(len(examples) * fraction))
    order = np.random.default_rng(seed).permutation(len(examples))
    val = set(order[:n_val].tolist())
    return ([ex for i, ex in enumerate(examples) if i not in val],
            [ex for i, ex in enumerate(examples) if i in val])
