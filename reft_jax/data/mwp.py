"""The mwp_ReFT JSON format: one array of ``{"item_id", "question", "answer_cot"?, "answer_value"}``
(all strings) for gsm8k, svamp, mathqa (multiple choice) and mathqa-numeric.

The dataset is the ``item_id`` prefix before the first ``_`` (as in the reference code); the CoT
style comes from the file name: ``*_nl.json`` N-CoT, ``*_python_sdp.json`` P-CoT, else none.
"""

from __future__ import annotations

import pathlib
import re

from reft_jax.data.jsonio import field, read_json_array
from reft_jax.data.numbers import parse_number
from reft_jax.data.records import CHOICE, NL, NUMERIC, PROGRAM, DataError, Example

CHOICE_DATASETS = frozenset({"mathqa"})
_LETTER = re.compile(r"^[a-e]$")


def style_of(path: pathlib.Path) -> str | None:
    name = path.name
    if name.endswith("_python_sdp.json"):
        return PROGRAM
    if name.endswith("_nl.json"):
        return NL
    return None


def normalise_answer(value: str, answer_type: str, where: str) -> str:
    """Gold answer as a clean string; a gold answer that does not parse is an error, never a 0."""
    value = value.strip()
    if answer_type == CHOICE:
        letter = value.lower()
        if not _LETTER.match(letter):
            raise DataError(f"{where}: field 'answer_value' {value!r} is not an option letter a-e")
        return letter
    value = value.replace(",", "")
    if parse_number(value) is None:
        raise DataError(f"{where}: field 'answer_value' {value!r} is not a number")
    return value


def parse_record(obj: dict, style: str | None, where: str) -> Example:
    item_id = field(obj, "item_id", where)
    where = f"{where} (item_id {item_id!r})"
    dataset = item_id.split("_", 1)[0]
    answer_type = CHOICE if dataset in CHOICE_DATASETS else NUMERIC
    cot = field(obj, "answer_cot", where) if style is not None else obj.get("answer_cot")
    if cot is not None and not isinstance(cot, str):
        raise DataError(f"{where}: field 'answer_cot' must be a string, got {type(cot).__name__}")
    return Example(
        id=item_id,
        question=field(obj, "question", where),
        answer=normalise_answer(field(obj, "answer_value", where), answer_type, where),
        answer_type=answer_type,
        cot=cot,
        style=(style if style is not None else NL) if cot is not None else None,
        dataset=dataset,
    )


def load_mwp_json(path: str | pathlib.Path) -> list[Example]:
    """Records of one mwp_ReFT JSON file."""
    path = pathlib.Path(path)
    style = style_of(path)
    return [parse_record(obj, style, f"{path}: record {i}") for i, obj in enumerate(read_json_array(path))]
