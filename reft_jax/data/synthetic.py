"""Synthetic multi-step arithmetic word problems with N-CoT and P-CoT annotations (CPU quickstart).

Deterministic for a seed. Train and test never share a question: a question goes to the split chosen
by a hash of its text, so no seed or size can make them overlap. Every intermediate value is a
non-negative integer (divisions are exact).
"""

from __future__ import annotations

import hashlib
import random

from reft_jax.data.prompts import program_header
from reft_jax.data.records import NL, NUMERIC, DataError, Example, check_style

NAMES = ("Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jon", "Kemi", "Liam")
ITEMS = ("apples", "marbles", "stickers", "books", "coins", "pencils", "shells", "cards")
TEST_FRACTION = 0.2


def split_of(question: str) -> str:
    digest = hashlib.sha256(question.encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < TEST_FRACTION else "train"


def _problem(rng: random.Random, steps: int, low: int, high: int):
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    value = rng.randint(low, high)
    sentences = [f"{name} has {value} {item}."]
    cot = []
    code = [f"    {item} = {value}"]
    for _ in range(steps):
        op = rng.choice(("add", "sub", "mul", "div"))
        if op == "sub" and value == 0:
            op = "add"
        if op == "add":
            n = rng.randint(low, high)
            sentences.append(f"Then {name} gets {n} more {item}.")
            new, expr, code_op = value + n, f"{value} + {n}", f"+ {n}"
        elif op == "sub":
            n = rng.randint(min(low, value), value) if value >= low else rng.randint(0, value)
            sentences.append(f"Then {name} gives away {n} {item}.")
            new, expr, code_op = value - n, f"{value} - {n}", f"- {n}"
        elif op == "mul":
            n = rng.randint(2, 4)
            sentences.append(f"Then the number of {item} {name} has becomes {n} times as large.")
            new, expr, code_op = value * n, f"{value} * {n}", f"* {n}"
        else:
            divisors = [d for d in (2, 3, 4, 5) if value % d == 0 and value > 0]
            if not divisors:
                n = rng.randint(low, high)
                sentences.append(f"Then {name} gets {n} more {item}.")
                new, expr, code_op = value + n, f"{value} + {n}", f"+ {n}"
            else:
                n = rng.choice(divisors)
                sentences.append(f"Then {name} shares the {item} equally among {n} friends and keeps one share.")
                new, expr, code_op = value // n, f"{value} / {n}", f"// {n}"
        cot.append(f"{name} now has {expr} = {new} {item}.")
        code.append(f"    {item} = {item} {code_op}")
        value = new
    sentences.append(f"How many {item} does {name} have now?")
    code += [f"    result = {item}", "    return result"]
    return " ".join(sentences), "\n".join(cot), code, value


def generate(
    n: int = 1000,
    split: str = "train",
    style: str = NL,
    seed: int = 0,
    steps: tuple[int, int] = (2, 4),
    number_range: tuple[int, int] = (1, 50),
) -> list[Example]:
    """``n`` problems of ``split`` with ``steps[0]``..``steps[1]`` operations on numbers drawn from
    ``number_range`` (inclusive); ``style`` picks the annotation kept in ``cot``."""
    check_style(style)
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    low, high = number_range
    if not 0 <= low <= high or not 1 <= steps[0] <= steps[1]:
        raise DataError(f"bad synthetic settings: steps={steps}, number_range={number_range}")
    rng = random.Random(f"reft-synthetic-{seed}")
    out, seen, tries = [], set(), 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise DataError(f"only {len(out)} distinct {split} problems for settings {steps}, {number_range}")
        question, cot, code, answer = _problem(rng, rng.randint(*steps), low, high)
        if question in seen or split_of(question) != split:
            continue
        seen.add(question)
        program = program_header(question) + "\n".join(code)
        out.append(
            Example(
                id=f"synthetic_{split}_{len(out)}",
                question=question,
                answer=str(answer),
                answer_type=NUMERIC,
                cot=cot if style == NL else program,
                style=style,
                dataset="synthetic",
            )
        )
    return out
