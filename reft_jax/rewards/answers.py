"""Final answers: extracting them from N-CoT text and program results, and comparing with gold."""

from __future__ import annotations

import re

from reft_jax.data.numbers import first_number, parse_number
from reft_jax.data.prompts import ANSWER_MARKER
from reft_jax.data.records import CHOICE, Example

TOLERANCE = 1e-2
# "b", "(b)", "b )", "B) 27.675", "b." - an option letter standing alone at the start.
_LETTER_RE = re.compile(r"^\s*\(?\s*([a-eA-E])\s*(?:\)|\.|,|:|\s|$)")

Answer = float | str  # a number for numeric datasets, an option letter for multiple choice


def extract_choice(text: str) -> str | None:
    m = _LETTER_RE.match(text)
    return m.group(1).lower() if m else None


def extract_nl(completion: str, answer_type: str) -> Answer | None:
    """The answer after the last ``Therefore, the answer is:``; the first number there (commas,
    ``$``, ``%``, fractions, a final period allowed) or, for choice questions, an option letter."""
    head, sep, tail = completion.rpartition(ANSWER_MARKER)
    if not sep:
        return None
    tail = tail.strip().splitlines()[0] if tail.strip() else ""
    return extract_choice(tail) if answer_type == CHOICE else first_number(tail)


def from_program(value: float | str | None, answer_type: str) -> Answer | None:
    """solution()'s value (already a plain float or str from the sandbox) as an answer."""
    if value is None:
        return None
    if answer_type == CHOICE:
        return extract_choice(value) if isinstance(value, str) else None
    return value if isinstance(value, float) else parse_number(value)


def gold_answer(example: Example) -> Answer:
    return example.answer if example.answer_type == CHOICE else float(parse_number(example.answer))


def is_correct(pred: Answer | None, example: Example) -> bool:
    """``|pred - gold| <= 1e-2`` for numbers, equal letters for choices."""
    if pred is None:
        return False
    gold = gold_answer(example)
    if example.answer_type == CHOICE:
        return pred == gold
    return isinstance(pred, float) and abs(pred - gold) <= TOLERANCE
