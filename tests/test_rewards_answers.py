"""Answer extraction and comparison, on hand-written examples."""

from __future__ import annotations

import pytest

from reft_jax.data import CHOICE, NUMERIC, Example
from reft_jax.rewards import extract_choice, extract_nl, from_program, is_correct

NUM = Example(id="n", question="q", answer="1000", answer_type=NUMERIC)
CHO = Example(id="c", question="q", answer="b", answer_type=CHOICE)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("x\nTherefore, the answer is: 72", 72.0),
        ("Therefore, the answer is: 1,000", 1000.0),
        ("Therefore, the answer is: $1,234.50.", 1234.5),
        ("Therefore, the answer is: 25%", 25.0),
        ("Therefore, the answer is: -3", -3.0),
        ("Therefore, the answer is: 3/4", 0.75),
        ("Therefore, the answer is: 18 dollars per hour.", 18.0),
        ("Therefore, the answer is: 1\nTherefore, the answer is: 2", 2.0),
        ("Therefore, the answer is: 5\nand then some text 9", 5.0),
        ("The answer is 5", None),
        ("Therefore, the answer is: none", None),
        ("Therefore, the answer is:", None),
    ],
)
def test_extract_numeric(text, expected):
    assert extract_nl(text, NUMERIC) == expected


@pytest.mark.parametrize(
    "text, expected",
    [("b", "b"), ("(b)", "b"), ("b )", "b"), ("B) 27.675", "b"), ("  (c) ", "c"), ("e.", "e"),
     ("f", None), ("because", None), ("", None), ("27", None)],
)
def test_extract_choice(text, expected):
    assert extract_choice(text) == expected
    assert extract_nl("Therefore, the answer is: " + text, CHOICE) == expected


def test_program_values():
    assert from_program(3.0, NUMERIC) == 3.0
    assert from_program("1,000", NUMERIC) == 1000.0
    assert from_program("12 apples", NUMERIC) is None
    assert from_program(None, NUMERIC) is None
    assert from_program("(b)", CHOICE) == "b"
    assert from_program(2.0, CHOICE) is None


def test_comparison_tolerance_and_letters():
    assert is_correct(1000.0, NUM) and is_correct(1000.01, NUM) and not is_correct(1000.02, NUM)
    assert not is_correct(None, NUM) and not is_correct("b", NUM)
    assert is_correct("b", CHO) and not is_correct("c", CHO) and not is_correct(None, CHO)
