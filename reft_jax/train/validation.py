"""Greedy accuracy of a stage's model on a split, with the run's evaluation settings.

Every training stage evaluates the same way: on the validation split carved from train after each
epoch (what checkpoints are chosen on) and on the test split once at the end.
"""

from __future__ import annotations

from typing import Any, Sequence

from reft_jax.data import load_examples
from reft_jax.data.batching import split_validation
from reft_jax.data.records import Example
from reft_jax.eval.evaluate import greedy_accuracy


def train_and_validation(config) -> tuple[list[Example], list[Example]]:
    """The run's training examples and the validation split carved from them (the same for
    every stage of a run: same seed, same fraction)."""
    d = config.data
    examples = load_examples(d.dataset, d.train_split, style=d.style,
                             data_dir=d.data_dir if d.data_dir else None)
    if d.max_train_examples > 0:
        examples = examples[:d.max_train_examples]
    return split_validation(examples, d.validation_fraction, config.seed)


def test_examples(config) -> list[Example]:
    """The test split, evaluated once at the end of a stage and never used to choose."""
    d = config.data
    return load_examples(d.dataset, d.test_split, style=d.style,
                         data_dir=d.data_dir if d.data_dir else None)


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
