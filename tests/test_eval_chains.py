"""Valid-chain columns of the eval on the price task, on hand-written completions."""

from __future__ import annotations

from reft_jax.data.price_task import generate_price
from reft_jax.data.records import Example
from reft_jax.eval.chains import chain_columns, price_chain_hook
from reft_jax.eval.results import format_table, summarize

QUESTION = "ann 18 fay 18 cal 30 each 3 ?"
ANNOTATED = "030 + 018 = 048 ; 048 + 018 = 066 ; 066 x 3 = 198 ;"
OTHER = ("018 x 3 = 054 ; 018 x 3 = 054 ; 054 + 054 = 108 ; 030 x 3 = 090 ; "
         "090 + 108 = 198 ;")
SHORTCUT = "030 + 018 = 050 ; 050 + 018 = 066 ; 066 x 3 = 198 ;"  # a wrong step, right answer


def example() -> Example:
    return Example("price_test_0", QUESTION, "198", cot=ANNOTATED, style="nl", dataset="price")


def answer(chain: str) -> str:
    return chain + "\nTherefore, the answer is: 198"


def test_hook_tells_annotated_other_and_invalid_chains():
    hook = price_chain_hook("nl")
    assert hook(example(), answer(ANNOTATED)) == {"valid_chain": True, "other_path": False}
    assert hook(example(), answer(OTHER)) == {"valid_chain": True, "other_path": True}
    assert hook(example(), answer(SHORTCUT)) == {"valid_chain": False, "other_path": False}


def record(model, qid, correct, extra):
    sample = {"answer": 198.0 if correct else None, "correct": correct, "rm_score": None}
    return {"model": model, "id": qid, "gold": "198",
            "greedy": {"answer": 198.0 if correct else None, "correct": correct},
            "samples": [sample], "voted": {"answer": None, "correct": correct},
            "reranked": None, "extra": extra}


def test_columns_are_shares_of_questions_and_of_valid_chains():
    hook = price_chain_hook("nl")
    recs = [record("sft", "a", True, hook(example(), answer(ANNOTATED))),
            record("sft", "b", True, hook(example(), answer(OTHER))),
            record("sft", "c", True, hook(example(), answer(SHORTCUT))),
            record("sft", "d", False, hook(example(), "nothing"))]
    # 2 of 4 questions have a valid chain; 1 of those 2 took another path
    assert chain_columns(recs) == {"valid_chain": 50.0, "other_path": 50.0}
    rows = summarize(recs, 1)
    assert rows[0]["top1"] == 75.0 and rows[0]["valid_chain"] == 50.0
    table = format_table(rows, 1)
    assert "valid chain" in table.splitlines()[0] and "50.00" in table.splitlines()[1]


def test_every_generated_annotation_counts_as_a_valid_annotated_chain():
    hook = price_chain_hook("nl")
    for ex in generate_price(50, "test", "nl", seed=3):
        assert hook(ex, answer_of(ex)) == {"valid_chain": True, "other_path": False}


def answer_of(ex: Example) -> str:
    return ex.cot + "\nTherefore, the answer is: " + ex.answer
