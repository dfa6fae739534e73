"""Which questions an eval runs on: `config.eval.split` ("test", "validation" or "train").

They are read exactly as every training stage reads them, through the data layer's
`load_split` / `load_train_and_validation` (same files, same seed, same carved fraction), so an
eval on "validation" sees the questions checkpoints were chosen on and never a test question.
A split the data does not have (a single file has only train) is the loader's error, raised
before any model is loaded.
"""

from __future__ import annotations

from reft_jax.data import load_split, load_train_and_validation
from reft_jax.data.records import DataError, Example

SPLITS = ("test", "validation", "train")


def split_examples(config, split: str) -> list[Example]:
    if split == "test":
        return load_split(config.data, "test")
    if split in ("train", "validation"):
        train, validation = load_train_and_validation(config.data, config.seed)
        return train if split == "train" else validation
    raise DataError(f"config.eval.split={split!r} is not one of {SPLITS}")


def eval_examples(config) -> list[Example]:
    """The questions of `config.eval.split`, the first `eval.max_examples` of them (0 = all)."""
    split = str(config.eval.split)
    examples = split_examples(config, split)
    limit = config.eval.max_examples
    examples = list(examples)[:limit] if limit > 0 else list(examples)
    if not examples:
        raise DataError(f"config.eval.split={split!r} of {config.data.dataset!r} holds no "
                        "questions")
    return examples
