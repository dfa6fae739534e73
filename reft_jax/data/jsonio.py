"""Reading JSON and JSONL files with errors that name the file, the line and the field."""

from __future__ import annotations

import json
import pathlib

from reft_jax.data.records import DataError


def read_jsonl(path: pathlib.Path) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                rows.append((lineno, parse_object(line, f"{path}:{lineno}")))
    return rows


def parse_object(line: str, where: str) -> dict:
    """One JSON object from a line; an error names `where` (file:line)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: malformed JSON line: {e.msg} (column {e.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_json_array(path: pathlib.Path) -> list[dict]:
    """The objects of a file holding one JSON array."""
    try:
        data = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: malformed JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise DataError(f"{path}: record {i}: expected a JSON object, got {type(obj).__name__}")
    return data


def field(obj: dict, name: str, where: str) -> str:
    """A required string field; ``where`` names the file and line or record for the message."""
    if name not in obj:
        raise DataError(f"{where}: missing field {name!r} (has: {', '.join(sorted(obj)) or 'none'})")
    value = obj[name]
    if not isinstance(value, str):
        raise DataError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    return value
