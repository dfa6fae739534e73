"""Numbers as people and models write them: ``1,000``, ``$18.50``, ``25%``, ``-3``, ``3/4``, ``72.``

Shared by the loaders (gold answers) and the reward (predictions), so both read numbers alike.
"""

from __future__ import annotations

import math
import re

_NUMBER = (
    r"(?P<sign>[-\u2212])?\s*\$?\s*"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?"
)
NUMBER_RE = re.compile(_NUMBER)
_WHOLE = re.compile(r"^\s*\$?\s*" + _NUMBER + r"\s*%?\s*\.?\s*$")


def _value(m: re.Match) -> float | None:
    x = float(m["num"].replace(",", ""))
    if m["den"] is not None:
        den = float(m["den"])
        if den == 0:
            return None
        x /= den
    if m["sign"]:
        x = -x
    return x if math.isfinite(x) else None


def parse_number(text: str) -> float | None:
    """The number that is the whole of ``text`` (currency sign, commas, ``%``, a final period
    allowed), or None. Strict on purpose: for gold answers and program return values."""
    m = _WHOLE.match(text)
    return _value(m) if m else None


def first_number(text: str) -> float | None:
    """The first number written in ``text``, or None (lenient: for a model's final answer line,
    e.g. ``$1,000 per month.``)."""
    m = NUMBER_RE.search(text)
    return _value(m) if m else None
