"""How a row of your own data becomes an `Example`, through `Fields` (the ``config.data.*_field``
keys); `own_data.py` finds the rows (sources and splits):

- question: the question column (a string).
- answer: a number (``72``, ``"1,000"``, ``"$18.50"``, ``"\\frac{3}{4}"``, ``"\\boxed{5}"``), an
  option letter for multiple choice, or GSM8K's ``"<reasoning>\\n#### 72"`` (the reasoning then
  becomes the N-CoT, and for P-CoT a program is built from its calculator annotations).
- cot: the reasoning column (N-CoT text, or a P-CoT program when the run's style is program).
- choices: the options of a multiple-choice question: a list (``["A)21", "B)22"]`` or
  ``["21", "22"]``), a ``{"label": [..], "text": [..]}`` dict, or one string
  ``"a ) 21 , b ) 22"``; they are appended to the question as MathQA writes them, and an answer
  that is an option's text becomes its letter.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from typing import Any, Iterable

from reft_jax.data.gsm8k import split_solution
from reft_jax.data.numbers import parse_number
from reft_jax.data.pcot_gsm8k import gsm8k_program
from reft_jax.data.records import CHOICE, NUMERIC, PROGRAM, DataError, Example

LETTERS = "abcde"


@dataclasses.dataclass(frozen=True)
class Fields:
    """Which column holds what; "" for cot/choices means the table has none."""

    question: str = "question"
    answer: str = "answer"
    cot: str = ""
    choices: str = ""
    answer_type: str = ""  # NUMERIC, CHOICE, or "": CHOICE when `choices` is set
    drop_unparsable: bool = False  # leave out rows whose gold answer does not parse (counted)

    def __post_init__(self):
        if self.answer_type not in ("", NUMERIC, CHOICE):
            raise DataError(f"config.data.answer_type={self.answer_type!r} is not one of "
                            f"('', {NUMERIC!r}, {CHOICE!r})")
        if not self.question or not self.answer:
            raise DataError("config.data.question_field and config.data.answer_field must name columns")

    @property
    def kind(self) -> str:
        return self.answer_type or (CHOICE if self.choices else NUMERIC)

    @classmethod
    def from_config(cls, data) -> Fields:
        return cls(str(data.question_field), str(data.answer_field), str(data.cot_field),
                   str(data.choices_field), str(data.answer_type), bool(data.drop_unparsable))


def rows_to_examples(rows: Iterable[tuple[str, dict]], name: str, split: str, style: str,
                     fields: Fields) -> list[Example]:
    """Examples ``<name>_<split>_<i>`` (``<name>_<i>`` when split is "") from (where, row) pairs;
    see the module docstring."""
    kept, dropped, total = [], [], 0
    for i, (where, row) in enumerate(rows):
        total += 1
        try:
            ex_id = f"{name}_{split}_{i}" if split else f"{name}_{i}"
            ex = row_to_example(row, ex_id, name, style, fields, where)
        except _Unparsable as e:
            if not fields.drop_unparsable:
                raise DataError(str(e)) from None
            dropped.append(str(e))
            continue
        if ex is not None:
            kept.append(ex)
    label = f"{name} [{split}]" if split else name
    if dropped:
        warnings.warn(f"{label}: left out {len(dropped)} of {total} rows whose gold "
                      f"answer is not a number (first: {dropped[0]})", stacklevel=2)
    programless = total - len(dropped) - len(kept)
    if programless:
        warnings.warn(f"{label}: {programless} of {total} GSM8K-style rows have no "
                      f"program that reproduces the gold answer; kept {len(kept)}", stacklevel=2)
    return kept


class _Unparsable(DataError):
    """A gold answer that is not a number (or not an option); dropped when asked to."""


def row_to_example(row: dict, ex_id: str, dataset: str, style: str, fields: Fields,
                   where: str) -> Example | None:
    question = _text(row, fields.question, where)
    answer = _value(row, fields.answer, where)
    cot = _text(row, fields.cot, where) if fields.cot else None
    gsm8k_solution = None
    if fields.kind == NUMERIC and "####" in answer:
        try:
            head, gold = split_solution(answer, f"{where}: field {fields.answer!r}")
        except DataError as e:
            raise _Unparsable(str(e)) from None
        gsm8k_solution, answer = answer, gold
        if cot is None:
            cot = head
    if fields.kind == CHOICE:
        options = _options(row[fields.choices] if fields.choices else None, fields.choices, where)
        if options:
            question = question.rstrip() + "\n" + " , ".join(
                f"{letter} ) {text}" for letter, text in zip(LETTERS, options))
        gold = _letter(answer, options, fields.answer, where)
    else:
        gold = plain_number(answer)
        if gold is None:
            raise _Unparsable(f"{where}: field {fields.answer!r} {answer!r} is not a number")
    if cot is not None and style == PROGRAM and gsm8k_solution is not None and not fields.cot:
        cot = gsm8k_program(question, gsm8k_solution, float(parse_number(gold)))
        if cot is None:
            return None  # no verified program: counted by the caller
    return Example(id=ex_id, question=question, answer=gold, answer_type=fields.kind, cot=cot,
                   style=style if cot is not None else None, dataset=dataset)


def _missing(row: dict, name: str, where: str) -> DataError:
    has = ", ".join(sorted(map(str, row))) or "none"
    return DataError(f"{where}: missing field {name!r} (has: {has})")


def _text(row: dict, name: str, where: str) -> str:
    if name not in row:
        raise _missing(row, name, where)
    value = row[name]
    if not isinstance(value, str):
        raise DataError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    return value


def _value(row: dict, name: str, where: str) -> str:
    """An answer cell as text: strings as they are, numbers written plainly."""
    if name not in row:
        raise _missing(row, name, where)
    value = row[name]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{where}: field {name!r} must be a string or a number, got "
                        f"{type(value).__name__}")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_BOXED = re.compile(r"\\boxed\s*\{")
_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]+?)\s*\}\s*\{\s*([^{}]+?)\s*\}")
_DROP = re.compile(r"\\[!,;: ]|\\\$|\\%|\^\s*\{?\\circ\}?|\\text\s*\{[^{}]*\}|\\mbox\s*\{[^{}]*\}")


def _unbox(text: str) -> str:
    m = _BOXED.search(text)
    if not m:
        return text
    depth, start = 1, m.end()
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return text


def plain_number(text: str) -> str | None:
    """A gold answer as the plain string the reward parses (``"1000"``, ``"-3/4"``, ``"18.50"``),
    or None. Takes what people and MATH-style datasets write: commas, ``$``, ``%``, ``\\boxed{}``,
    ``\\frac{a}{b}``, ``^\\circ``, ``\\text{units}``, surrounding ``$...$``."""
    text = _unbox(str(text).strip()).strip().strip("$").strip()
    text = _DROP.sub("", _FRAC.sub(r"\1/\2", text)).replace("{", "").replace("}", "").strip()
    text = text.replace(",", "").replace("$", "")
    if parse_number(text) is None:
        return None
    return text.rstrip(".%").strip().replace(" ", "")


_OPTION_PREFIX = re.compile(r"^\s*\(?\s*([a-eA-E])\s*[).:]\s*")


def _options(cell: Any, name: str, where: str) -> list[str]:
    """The option texts of a multiple-choice cell, letter prefixes removed."""
    if cell is None:
        return []
    if isinstance(cell, dict) and "text" in cell:
        cell = cell["text"]
    if isinstance(cell, str):
        parts = re.split(r"\s*,\s*(?=[a-eA-E]\s*\))", cell.strip())
        cell = parts if len(parts) > 1 else [cell]
    if not isinstance(cell, (list, tuple)) or not all(isinstance(o, (str, int, float)) for o in cell):
        raise DataError(f"{where}: field {name!r} must be a list of options, got {type(cell).__name__}")
    if not 2 <= len(cell) <= len(LETTERS):
        raise DataError(f"{where}: field {name!r} has {len(cell)} options; 2 to {len(LETTERS)} are "
                        "supported (letters a-e)")
    return [_OPTION_PREFIX.sub("", str(o)).strip() for o in cell]


def _letter(answer: str, options: list[str], name: str, where: str) -> str:
    m = re.fullmatch(r"\s*\(?\s*([a-eA-E])\s*\)?\s*", answer)
    if m:
        return m.group(1).lower()
    stripped = _OPTION_PREFIX.sub("", answer).strip()
    if stripped in options:
        return LETTERS[options.index(stripped)]
    raise _Unparsable(f"{where}: field {name!r} {answer!r} is neither an option letter a-e nor "
                      "one of the options")
