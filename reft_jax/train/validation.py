"""Greedy accuracy of a stage's model on a split, with the run's evaluation settings.

Every training stage evaluates the same way: on the validation split carved from train after each
epoch (what checkpoints are chosen on) and on the test split once at the end.
"""

from __future__ import annotations

from typing import Any, Sequence

from reft_jax.data import load_split, load_train_and_validation
from reft_jax.data.records import Example
from reft_jax.eval.evaluate import greedy_accuracy


def train_and_validation(config) -> tuple[list[Example], list[Example]]:
    """The run's training examples and its validation split (the source's own, or carved from
    train with the run's seed and fraction): the same for every stage of a run."""
    return load_train_and_validation(config.data, config.seed)


def test_examples(config) -> list[Example]:
    """The test split, evaluated once at the end of a stage and never used to choose."""
    return load_split(config.data, "test")


def evaluate_split(config, model, tokenizer: Any, examples: Sequence[Example],
                   max_length: int) -> dict[str, float] | None:
    """Accuracy on the first `config.eval.max_examples` examples (all when 0); None when there
    are none to evaluate (an empty validation split)."""
    limit = config.eval.max_examples
    chosen = list(examples)[:limit] if limit > 0 else list(examples)
    if not chosen:
        return None
    return greedy_accuracy(model, tokenizer, chosen, config.data.style,
                           batch_size=config.eval.batch_size,
                           max_new_tokens=config.eval.max_new_tokens, max_length=max_length,
                           chat=config.data.chat_template, program_timeout=config.eval.program_timeout)
