"""GSM8K P-CoT programs built from calculator annotations."""

from __future__ import annotations

import random
import warnings

from reft_jax.data import gsm8k_program, load_gsm8k_programs
from reft_jax.rewards import run_programs


def test_program_by_hand():
    answer = (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
    )
    program = gsm8k_program("How many clips?", answer, 72.0)
    assert program == (
        'def solution():\n    """How many clips?"""\n'
        "    step1 = 48 / 2\n    step2 = 48 + step1\n    result = step2\n    return result"
    )


def test_unannotated_last_step_and_wrong_gold():
    answer = "He has 3*4=<<3*4=12>>12 cards.\nSo 12 + 5 = 17 cards.\n#### 17"
    program = gsm8k_program("q", answer, 17.0)
    assert "step2 = step1 + 5" in program
    assert run_programs([program], timeout=5.0) == [17.0]
    assert gsm8k_program("q", answer, 18.0) is None
    assert gsm8k_program("q", "No arithmetic here.\n#### 4", 4.0) is None


def test_gsm8k_train_conversion_rate(gsm8k_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept, dropped = load_gsm8k_programs(gsm8k_dir / "train.jsonl")
    assert len(kept) + dropped == 7473
    assert len(kept) / 7473 >= 0.95
    assert any(f"{dropped} of 7473" in str(w.message) for w in caught)
    # The evaluator that verified them is not exec: check a sample through the real sandbox.
    sample = random.Random(0).sample(kept, 300)
    got = run_programs([ex.cot for ex in sample], timeout=5.0)
    for value, ex in zip(got, sample):
        assert value is not None and abs(value - float(ex.answer)) <= 1e-2, ex.id
