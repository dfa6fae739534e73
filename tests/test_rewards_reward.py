"""The reward on the shipped data (gold targets score 1, a wrong number the partial reward) and on
hand-written completions."""

from __future__ import annotations

import json

import pytest

from reft_jax.data import CHOICE, Example, build_target, load_examples, program_header
from reft_jax.rewards import RewardConfig, complete_program, reward_fn, run_programs


def test_every_svamp_program_returns_its_gold_answer(mwp_dir):
    records = json.loads((mwp_dir / "svamp_python_sdp.json").read_text())
    got = run_programs([r["answer_cot"] for r in records], timeout=10.0)
    wrong = [r["item_id"] for r, v in zip(records, got) if v is None or abs(v - float(r["answer_value"])) > 1e-2]
    assert len(records) == 3043 and wrong == []


def test_svamp_program_completions_score_one(mwp_dir):
    every = load_examples(mwp_dir / "svamp_python_sdp.json")
    # 37 programs' docstrings differ from their question (spacing around apostrophes): skip them.
    examples = [ex for ex in every if ex.cot.startswith(program_header(ex.question))]
    assert len(examples) >= 3000
    examples = examples[:300]
    bodies = [ex.cot[len(program_header(ex.question)) :] for ex in examples]
    assert reward_fn(bodies, examples, "program") == [1.0] * len(examples)
    wrong = [b.replace("return result", "return result + 1") for b in bodies]
    assert reward_fn(wrong, examples, "program") == [0.1] * len(examples)


def _bump_answer(target: str) -> str:
    head, _, number = target.rpartition(" ")
    return f"{head} {float(number) + 1}"


@pytest.mark.parametrize("name", ["gsm8k", "svamp"])
def test_every_gold_nl_target_scores_one_and_a_wrong_number_partial(name, gsm8k_dir, mwp_dir):
    examples = load_examples(name, "train", data_dir=gsm8k_dir.parent)
    targets = [build_target(ex, "nl") for ex in examples]
    assert reward_fn(targets, examples, "nl") == [1.0] * len(examples)
    wrong = [_bump_answer(t) for t in targets]
    assert reward_fn(wrong, examples, "nl") == [0.1] * len(examples)
    config = RewardConfig(partial_reward=0.0)
    assert reward_fn(wrong, examples, "nl", config) == [0.0] * len(examples)


def test_program_completion_is_cut_at_first_blank_line_with_imports():
    ex = Example(id="x", question="q", answer="6")
    body = "    a = 2\n    result = sympy.Integer(a) * 3\n    return result\n\nprint('trailing junk')\n"
    program = complete_program(body, ex.question)
    assert program == (
        'import math\nimport sympy\ndef solution():\n    """q"""\n'
        "    a = 2\n    result = sympy.Integer(a) * 3\n    return result"
    )
    assert reward_fn([body], [ex], "program") == [1.0]


def test_program_rewards_none_wrong_and_hostile():
    ex = Example(id="x", question="q", answer="6")
    completions = ["    return 6\n", "    return 7\n", "    return 'six'\n", "    while True:\n        pass\n",
                   "    import os\n    os.kill(os.getppid(), 9)\n"]
    config = RewardConfig(timeout=0.5)
    assert reward_fn(completions, [ex] * 5, "program", config) == [1.0, 0.1, 0.0, 0.0, 0.0]


def test_choice_partial_reward_decision():
    ex = Example(id="m", question="q\na ) 1 , b ) 2", answer="b", answer_type=CHOICE)
    outs = ["r\nTherefore, the answer is: (b)", "r\nTherefore, the answer is: c )", "r\nno answer here"]
    assert reward_fn(outs, [ex] * 3, "nl") == [1.0, 0.1, 0.0]
    assert reward_fn(outs, [ex] * 3, "nl", RewardConfig(choice_partial_reward=0.0)) == [1.0, 0.0, 0.0]
    reference = RewardConfig(partial_for_malformed_choice=True)
    assert reward_fn(outs, [ex] * 3, "nl", reference) == [1.0, 0.1, 0.1]


def test_mismatched_lengths_and_bad_style():
    ex = Example(id="x", question="q", answer="6")
    with pytest.raises(ValueError, match="2 completions but 1 examples"):
        reward_fn(["a", "b"], [ex], "nl")
    with pytest.raises(ValueError, match="style"):
        reward_fn(["a"], [ex], "python")


def test_comma_numbers_in_predictions_count():
    ex = Example(id="x", question="q", answer="1000")
    assert reward_fn(["so\nTherefore, the answer is: 1,000."], [ex], "nl") == [1.0]
