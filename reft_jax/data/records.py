"""The one record every dataset loader returns, and the error type for bad data."""

from __future__ import annotations

import dataclasses

from reft_jax.errors import ReftError

NUMERIC = "numeric"
CHOICE = "choice"
NL = "nl"  # N-CoT: natural-language reasoning
PROGRAM = "program"  # P-CoT: a Python program whose solution() returns the answer
STYLES = (NL, PROGRAM)


def check_style(style) -> str:
    """`style` itself when it is one of STYLES; else the one error every module gives."""
    if style not in STYLES:
        raise DataError(f"style must be one of {STYLES}, got {style!r}")
    return style


class DataError(ReftError):
    """A dataset file or record is unusable; the message names the file, the line or record, and
    the field."""


@dataclasses.dataclass(frozen=True)
class Example:
    """One math word problem.

    Attributes:
      id: unique within its dataset, e.g. ``"svamp_0"`` or ``"gsm8k_train_12"``.
      question: the problem text as in the file (the prompt builder strips it).
      answer: the gold answer as a string: a number without commas (``"1000"``, ``"203.0"``) when
        ``answer_type`` is numeric, a lower-case option letter ``a``-``e`` when it is choice.
      answer_type: ``"numeric"`` or ``"choice"`` (MathQA multiple choice).
      cot: the annotated reasoning (N-CoT text or a P-CoT program), None for test sets.
      style: ``"nl"`` or ``"program"`` for the kind of ``cot``; None when there is no cot.
      dataset: the dataset name (``gsm8k``, ``svamp``, ``mathqa``, ``mathqa-numeric``, ``synthetic``).
    """

    id: str
    question: str
    answer: str
    answer_type: str = NUMERIC
    cot: str | None = None
    style: str | None = None
    dataset: str = ""

    def __post_init__(self):
        if self.answer_type not in (NUMERIC, CHOICE):
            raise DataError(f"{self.id}: answer_type must be {NUMERIC!r} or {CHOICE!r}, got {self.answer_type!r}")
        if self.style is not None and self.style not in STYLES:
            raise DataError(f"{self.id}: style must be one of {STYLES} or None, got {self.style!r}")
