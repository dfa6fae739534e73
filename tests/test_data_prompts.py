"""Prompt and target builders (REFT_SPEC.md, by hand) and the synthetic generator."""

from __future__ import annotations

import pytest

from reft_jax.data import (
    DataError,
    Example,
    build_prompt,
    build_rl_prompt,
    build_sft_prompt,
    build_target,
    generate_synthetic,
    program_header,
)
from reft_jax.rewards import run_programs

EX_NL = Example(id="t_0", question="  How many? ", answer="5", cot=" Two plus three is 5. \n", style="nl")
EX_PROG = Example(
    id="t_1",
    question="How many?",
    answer="5",
    cot='def solution():\n    """How many?"""\n    a = 2\n    result = a + 3\n    return result',
    style="program",
)


def test_prompt_and_targets_by_hand():
    assert build_prompt("  How many? ") == "Question:\nHow many?\nAnswer reasoning:\n"
    assert build_target(EX_NL) == "Two plus three is 5.\nTherefore, the answer is: 5"
    assert build_target(EX_PROG) == EX_PROG.cot  # the whole program, no EOS text
    assert build_sft_prompt(EX_PROG) == "Question:\nHow many?\nAnswer reasoning:\n"
    assert build_rl_prompt(EX_NL, "nl") == "Question:\nHow many?\nAnswer reasoning:\n"
    assert build_rl_prompt(EX_PROG, "program") == (
        'Question:\nHow many?\nAnswer reasoning:\ndef solution():\n    """How many?"""\n'
    )
    assert program_header("q") == 'def solution():\n    """q"""\n'


def test_target_style_mismatch_and_missing_cot():
    with pytest.raises(DataError, match="not program"):
        build_target(EX_NL, "program")
    with pytest.raises(DataError, match="no annotated reasoning"):
        build_target(Example(id="t", question="q", answer="1"), "nl")
    with pytest.raises(DataError, match="style"):
        build_rl_prompt(EX_NL, "python")


class FakeChatTokenizer:
    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is True
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"


def test_chat_template_wraps_the_question_and_header_follows():
    got = build_rl_prompt(EX_PROG, "program", chat_template=FakeChatTokenizer())
    assert got == (
        "<user>Question:\nHow many?\nAnswer reasoning:\n</user><assistant>"
        'def solution():\n    """How many?"""\n'
    )
    with pytest.raises(DataError, match="apply_chat_template"):
        build_rl_prompt(EX_NL, "nl", chat_template=object())


def test_synthetic_is_deterministic_and_splits_never_overlap():
    a = generate_synthetic(300, "train", seed=1)
    assert a == generate_synthetic(300, "train", seed=1)
    assert a != generate_synthetic(300, "train", seed=2)
    test = generate_synthetic(300, "test", seed=1)
    other_seed_test = generate_synthetic(300, "test", seed=7)
    train_q = {ex.question for ex in a}
    assert len(train_q) == 300
    assert not train_q & {ex.question for ex in test + other_seed_test}


def test_synthetic_annotations_agree_with_the_answer():
    nl = generate_synthetic(60, "train", seed=3, steps=(3, 3), number_range=(5, 9))
    programs = generate_synthetic(60, "train", seed=3, steps=(3, 3), number_range=(5, 9), style="program")
    assert [e.question for e in nl] == [e.question for e in programs]
    for ex in nl:
        lines = ex.cot.splitlines()
        assert len(lines) == 3
        assert lines[-1].endswith(f"= {ex.answer} " + lines[-1].split()[-1])
        assert ex.question.count("Then ") == 3
    got = run_programs([ex.cot for ex in programs], timeout=5.0)
    assert got == [float(ex.answer) for ex in programs]


def test_synthetic_bad_settings():
    with pytest.raises(DataError):
        generate_synthetic(5, "train", steps=(0, 2))
    with pytest.raises(DataError):
        generate_synthetic(5, "dev")
