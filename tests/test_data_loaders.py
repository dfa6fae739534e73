"""Dataset loaders: counts and parsing of the shipped files, and clear errors on bad input."""

from __future__ import annotations

import json

import pytest

from reft_jax.data import (
    CHOICE,
    NUMERIC,
    DataError,
    Example,
    load_examples,
    load_gsm8k_jsonl,
    load_mwp_json,
    parse_number,
)
from reft_jax.data.gsm8k import split_solution


def test_gsm8k_counts_and_answers(gsm8k_dir):
    train = load_examples("gsm8k", "train", data_dir=gsm8k_dir.parent)
    test = load_examples("gsm8k", "test", data_dir=gsm8k_dir.parent)
    assert (len(train), len(test)) == (7473, 1319)
    for ex in train + test:
        assert ex.answer_type == NUMERIC and "," not in ex.answer
        assert parse_number(ex.answer) is not None
        assert "<<" not in ex.cot and "####" not in ex.cot
    assert len({ex.id for ex in train + test}) == 7473 + 1319


def test_gsm8k_first_record_by_hand(gsm8k_dir):
    first = load_gsm8k_jsonl(gsm8k_dir / "train.jsonl")[0]
    assert first.question.startswith("Natalia sold clips to 48 of her friends")
    assert first.cot == (
        "Natalia sold 48/2 = 24 clips in May.\n"
        "Natalia sold 48+24 = 72 clips altogether in April and May."
    )
    assert first.answer == "72"


def test_gsm8k_solution_split_removes_commas_and_annotations():
    cot, gold = split_solution("He pays 2*500=<<2*500=1000>>1000.\n#### 1,000", "x")
    assert (cot, gold) == ("He pays 2*500=1000.", "1000")
    cot, gold = split_solution("Down 3.\n#### -3", "x")
    assert gold == "-3"


def test_mwp_files(mwp_dir):
    nl = load_examples("svamp", "train", data_dir=mwp_dir.parent)
    programs = load_examples("svamp", "train", style="program", data_dir=mwp_dir.parent)
    test = load_examples("svamp", "test", data_dir=mwp_dir.parent)
    numeric = load_examples(mwp_dir / "mathqa-numeric_test_set.json")
    assert (len(nl), len(programs), len(test), len(numeric)) == (3076, 3043, 1000, 1605)
    assert {ex.style for ex in nl} == {"nl"} and {ex.style for ex in programs} == {"program"}
    assert all(ex.cot is None and ex.style is None for ex in test)
    assert programs[0].id == "svamp_0" and programs[0].answer == "203.0" and programs[0].dataset == "svamp"
    assert numeric[0].dataset == "mathqa-numeric" and numeric[0].answer_type == NUMERIC


def test_mathqa_choice_format(tmp_path):
    path = tmp_path / "mathqa_test_set.json"
    question = "what is 2 + 3 ?\na ) 4 , b ) 5 , c ) 6 , d ) 7 , e ) none of these"
    path.write_text(json.dumps([{"item_id": "mathqa_0", "question": question, "answer_value": "B"}]))
    (ex,) = load_mwp_json(path)
    assert (ex.answer, ex.answer_type, ex.dataset, ex.question) == ("b", CHOICE, "mathqa", question)


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q", "answer": "1\\n#### 1"}\n{"question": "q", \n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: malformed JSON"):
        load_examples(path)


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "svamp_nl.json"
    path.write_text('[\n  {"item_id": "svamp_0",\n  "question": "q"\n  "answer_value": "1"}\n]')
    with pytest.raises(DataError, match=r"svamp_nl\.json:4: malformed JSON"):
        load_examples(path)


def test_missing_field_is_named(tmp_path):
    path = tmp_path / "svamp_test_set.json"
    path.write_text(json.dumps([{"item_id": "svamp_1", "answer_value": "3"}]))
    with pytest.raises(DataError, match=r"record 0.*svamp_1.*missing field 'question'"):
        load_examples(path)
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(DataError, match=r"g\.jsonl:1: missing field 'answer'"):
        load_examples(path)


@pytest.mark.parametrize("value", ["abc", "", "12 apples", "nan"])
def test_non_numeric_gold_is_an_error_not_zero(tmp_path, value):
    path = tmp_path / "svamp_test_set.json"
    path.write_text(json.dumps([{"item_id": "svamp_7", "question": "q", "answer_value": value}]))
    with pytest.raises(DataError, match="answer_value.*not a number"):
        load_examples(path)
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": f"x\n#### {value}"}) + "\n")
    with pytest.raises(DataError, match=r"g\.jsonl:1: .*not a number"):
        load_examples(path)


def test_bad_choice_gold_and_unknown_sources(tmp_path):
    path = tmp_path / "mathqa_test_set.json"
    path.write_text(json.dumps([{"item_id": "mathqa_3", "question": "q", "answer_value": "f"}]))
    with pytest.raises(DataError, match="option letter"):
        load_examples(path)
    with pytest.raises(DataError, match="neither a known name"):
        load_examples("no_such_dataset")
    with pytest.raises(DataError, match=r"'svamp' has no 'validation' split \(it has: train, test\)"):
        load_examples("svamp", "validation")
    with pytest.raises(DataError, match="does not exist"):
        load_examples("mathqa", "train", data_dir=tmp_path)
    with pytest.raises(DataError, match="answer_type"):
        Example(id="x", question="q", answer="1", answer_type="free")


def test_data_errors_are_one_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("not json\n")
    with pytest.raises(DataError) as info:
        load_examples(path)
    assert "\n" not in str(info.value)
