"""GSM8K in its original format: JSONL ``{"question", "answer"}``, the answer a human solution with
``<<48/2=24>>`` calculator annotations and a last line ``#### 72``."""

from __future__ import annotations

import pathlib
import re

from reft_jax.data.jsonio import field, read_jsonl
from reft_jax.data.numbers import parse_number
from reft_jax.data.records import NL, NUMERIC, DataError, Example

ANNOTATION_RE = re.compile(r"<<([^<>]*)>>")
_FINAL = "####"


def split_solution(answer: str, where: str) -> tuple[str, str]:
    """(N-CoT without annotations and without the ``####`` line, gold answer without commas)."""
    head, sep, gold = answer.rpartition(_FINAL)
    if not sep:
        raise DataError(f"{where}: field 'answer' has no '{_FINAL} <number>' line")
    gold = gold.strip().replace(",", "")
    if parse_number(gold) is None:
        raise DataError(f"{where}: gold answer {gold!r} after '{_FINAL}' is not a number")
    cot = ANNOTATION_RE.sub("", head).strip()
    return cot, gold


def parse_record(obj: dict, index: int, split: str, where: str) -> Example:
    question = field(obj, "question", where)
    cot, gold = split_solution(field(obj, "answer", where), where)
    return Example(
        id=f"gsm8k_{split}_{index}",
        question=question,
        answer=gold,
        answer_type=NUMERIC,
        cot=cot,
        style=NL,
        dataset="gsm8k",
    )


def load_gsm8k_jsonl(path: str | pathlib.Path, split: str | None = None) -> list[Example]:
    """Records of a GSM8K JSONL file; ``split`` (default: the file stem) goes into the ids."""
    path = pathlib.Path(path)
    split = split if split is not None else path.stem
    rows = read_jsonl(path)
    return [parse_record(obj, i, split, f"{path}:{lineno}") for i, (lineno, obj) in enumerate(rows)]


def load_gsm8k_hub(split: str) -> list[Example]:
    """The same records from the Hugging Face hub (``openai/gsm8k``, config ``main``); needs network
    the first time. ``datasets`` is imported here only, never at module import."""
    import datasets  # noqa: PLC0415 - optional and slow to import

    ds = datasets.load_dataset("openai/gsm8k", "main", split=split)
    return [parse_record(dict(row), i, split, f"hub openai/gsm8k[{split}] row {i}") for i, row in enumerate(ds)]


def annotations(answer: str) -> list[str]:
    """The calculator annotations ``expr=value`` of a GSM8K solution, in order."""
    return ANNOTATION_RE.findall(answer)
