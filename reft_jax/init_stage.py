"""The `init` stage: a tokenizer built from the training corpus and a model with random weights.

For `model.source="scratch"`: the run trains a small model from nothing (the CPU quickstart), so
the base checkpoint is made here, as a Hugging Face folder `<workdir>/scratch`, and every later
stage reads it as it would read a pretrained one. The tokenizer is a real `tokenizers` word-level
tokenizer (one token per digit) over the training questions and targets; for the price task its
corpus also spells out every name and digit, so no test question can meet an unknown word.
"""

from __future__ import annotations

import pathlib

from reft_jax.data.corpus_tokenizer import build_tokenizer, example_texts
from reft_jax.data.price_task import corpus_texts
from reft_jax.errors import ReftError
from reft_jax.models import save_pretrained
from reft_jax.models.scratch import scratch_model
from reft_jax.parallel.hosts import is_primary
from reft_jax.train.validation import train_and_validation

SCRATCH = "scratch"


def scratch_folder(config) -> pathlib.Path:
    return pathlib.Path(config.workdir) / SCRATCH


def resolve_model_source(config) -> None:
    """`model.source="scratch"` names the folder the init stage writes in this workdir."""
    if str(config.model.source) == SCRATCH:
        config.model.source = str(scratch_folder(config))


def run_init(config, log=print) -> pathlib.Path:
    folder = scratch_folder(config)
    if str(config.model.source) != str(folder):
        raise ReftError("the init stage builds a model from scratch: set config.model.source="
                        f"'{SCRATCH}' (it now names {config.model.source!r})")
    if (folder / "config.json").exists():
        log(f"init: {folder} exists, kept (delete it to start from new random weights)")
        return folder
    train, _ = train_and_validation(config)
    texts = example_texts(train)
    if config.data.dataset == "price":
        texts += corpus_texts()
    tokenizer = build_tokenizer(texts)
    s = config.scratch
    model = scratch_model(tokenizer, hidden_size=s.hidden_size, num_layers=s.num_layers,
                          num_heads=s.num_heads, intermediate_size=s.intermediate_size,
                          max_positions=s.max_positions, seed=config.seed)
    if is_primary():
        save_pretrained(model, tokenizer, folder)
    log(f"init: {model.config.num_params / 1e3:.0f}k-parameter model, vocabulary "
        f"{len(tokenizer)}, written to {folder}")
    return folder
