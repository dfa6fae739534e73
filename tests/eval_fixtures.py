"""A tiny model whose random samples often hold an extractable answer, for eval and reward-model tests.

The tiny word-level tokenizer of `tiny_hf` cannot spell "Therefore, the answer is: 3", so a tiny
random model never answers and every accuracy would be a trivial 0. Here ten of its 96 tokens
each decode to a whole "Therefore, the answer is: <digit>": a random model then ends about half
its samples with an answer, right about one time in ten, which gives votes, pass@k and reranking
something to decide.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from reft_jax.data.prompts import ANSWER_MARKER
from tests.tiny_hf import VOCAB, save_tiny

ANSWER_TOKENS = 10
WORDS = VOCAB - 4 - ANSWER_TOKENS  # w0 .. w81


def answer_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = (["<pad>", "<s>", "</s>", "<unk>"] + [f"w{i}" for i in range(WORDS)]
             + [f"{ANSWER_MARKER} {d}" for d in range(ANSWER_TOKENS)])
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def save_answering_model(folder: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """A tiny random Llama with the answer tokenizer (same size and special ids as tiny_hf's)."""
    save_tiny(folder, "llama", seed=seed)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    answer_tokenizer().save_pretrained(folder)
    return folder


def write_questions(path: pathlib.Path, n: int, seed: int = 0) -> pathlib.Path:
    """GSM8K-format records with w-word questions and a gold digit answer."""
    rng = np.random.default_rng(seed)
    with path.open("w") as f:
        for i in range(n):
            q = " ".join(f"w{j}" for j in rng.integers(0, WORDS, 4))
            a = " ".join(f"w{j}" for j in rng.integers(0, WORDS, 2))
            f.write(json.dumps({"question": q, "answer": f"{a}\n#### {int(rng.integers(0, 10))}"})
                    + "\n")
    return path
