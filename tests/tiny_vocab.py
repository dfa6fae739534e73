"""A tiny model whose tokenizer covers every word of the prompts and answers (tests/tiny_hf.py's
maps "Question:" and "Answer" to <unk>), so an SFT run can overfit and score above 0."""

from __future__ import annotations

import json
import pathlib

from reft_jax.data import load_examples
from reft_jax.data.corpus_tokenizer import build_tokenizer, example_texts

NAMES = ("ann", "bob", "cal", "dee", "eve", "fay")


def sum_rows(pairs) -> list[dict]:
    """GSM8K-form rows: "<name> has a and gets b ." answered "a + b = c\\n#### c"."""
    return [{"question": f"{NAMES[i % len(NAMES)]} has {a} and gets {b} .",
             "answer": f"{a} + {b} = {a + b}\n#### {a + b}"} for i, (a, b) in enumerate(pairs)]


def write_splits(folder: pathlib.Path, **splits: list[dict]) -> pathlib.Path:
    """A dataset folder with one <split>.jsonl per keyword."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def save_vocab_model(folder: pathlib.Path, dataset: pathlib.Path, seed: int = 0, **overrides):
    """A random tiny Llama whose word-level tokenizer is built from every text a run makes of
    the dataset folder's splits; saved with it into `folder`. Returns the torch model."""
    import torch
    from transformers import AutoModelForCausalLM

    from tests.tiny_hf import hf_config

    examples = [ex for path in sorted(dataset.glob("*.jsonl"))
                for ex in load_examples(dataset, path.stem)]
    tokenizer = build_tokenizer(example_texts(examples))
    torch.manual_seed(seed)
    settings = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                    num_hidden_layers=2, max_position_embeddings=128,
                    eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                    bos_token_id=tokenizer.bos_token_id)
    settings.update(overrides)
    model = AutoModelForCausalLM.from_config(hf_config("llama", **settings),
                                             attn_implementation="eager").eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model
