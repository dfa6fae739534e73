"""Your own data: folders of split files, explicit files, `datasets` folders and hub:<id> (a local
folder stands in for the hub: no network), column mapping, and a clear error for a split a source
does not have. Expected values are written by hand from the rows each test writes."""

from __future__ import annotations

import json
import warnings

import pytest

from reft_jax.config import default_config
from reft_jax.data import (CHOICE, NUMERIC, DataError, Fields, build_target, load_examples,
                           load_split, load_train_and_validation, plain_number)
from reft_jax.rewards import reward_fn

NATALIA = {
    "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
                "clips in May. How many clips did Natalia sell altogether in April and May?",
    "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 "
              "clips altogether in April and May.\n#### 72",
}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def gsm8k_rows(tag, n):
    return [{"question": f"{tag} question {i}?", "answer": f"{tag} step {i}.\n#### {i + 1}"}
            for i in range(n)]


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "mydata"
    root.mkdir()
    write_jsonl(root / "train.jsonl", gsm8k_rows("train", 5))
    write_jsonl(root / "test.jsonl", [{"question": "test q?", "answer": "1,000"},
                                      {"question": "test r?", "answer": 7}])
    return root


def data_config(dataset, **keys):
    c = default_config()
    c.data.dataset = str(dataset)
    for key, value in keys.items():
        c.data[key] = value
    return c.data


def test_a_folder_holds_one_file_per_split(folder):
    train = load_examples(folder, "train")
    assert [ex.question for ex in train] == [f"train question {i}?" for i in range(5)]
    assert [ex.answer for ex in train] == ["1", "2", "3", "4", "5"]
    assert [ex.cot for ex in train] == [f"train step {i}." for i in range(5)]
    assert {ex.style for ex in train} == {"nl"} and train[0].id == "mydata_train_0"
    test = load_examples(folder, "test")
    assert [(ex.question, ex.answer, ex.cot) for ex in test] == [("test q?", "1000", None),
                                                                 ("test r?", "7", None)]
    with pytest.raises(DataError, match=r"mydata.* has no 'validation' split \(it has: test, train\)"):
        load_examples(folder, "validation")


def test_a_single_file_is_the_train_split_and_never_the_test_split(folder):
    path = folder / "train.jsonl"
    assert [ex.answer for ex in load_examples(path, "train")] == ["1", "2", "3", "4", "5"]
    assert [ex.answer for ex in load_examples(path)] == ["1", "2", "3", "4", "5"]  # read whole
    with pytest.raises(DataError) as info:
        load_examples(path, "test")
    message = str(info.value)
    assert str(path) in message and "'test' split" in message and "data.test_file" in message


def test_explicit_files_override_the_dataset_for_their_split(folder, tmp_path):
    other = write_jsonl(tmp_path / "held_out.jsonl", [{"question": "x?", "answer": "3.5"}])
    d = data_config(folder, test_file=str(other))
    assert [(ex.question, ex.answer) for ex in load_split(d, "test")] == [("x?", "3.5")]
    assert len(load_split(d, "train")) == 5  # still the folder's
    d = data_config(other, train_file=str(folder / "train.jsonl"), test_file=str(other))
    assert len(load_split(d, "train")) == 5 and len(load_split(d, "test")) == 1
    with pytest.raises(DataError, match="has no 'test' split"):
        load_split(data_config(folder / "train.jsonl"), "test")


def test_a_validation_split_replaces_the_carved_share(folder, tmp_path):
    d = data_config(folder, validation_fraction=0.4)
    train, validation = load_train_and_validation(d, seed=0)
    assert len(validation) == 2 and len(train) == 3  # round(5 * 0.4) carved
    assert sorted(ex.id for ex in train + validation) == [f"mydata_train_{i}" for i in range(5)]
    write_jsonl(folder / "validation.jsonl", [{"question": "v?", "answer": "9"}])
    train, validation = load_train_and_validation(d, seed=0)
    assert len(train) == 5 and [ex.question for ex in validation] == ["v?"]
    explicit = write_jsonl(tmp_path / "dev.jsonl", [{"question": "w?", "answer": "8"}] * 2)
    d = data_config(folder, validation_file=str(explicit), max_train_examples=4)
    train, validation = load_train_and_validation(d, seed=0)
    assert len(train) == 4 and [ex.question for ex in validation] == ["w?", "w?"]


MATH_ROWS = {  # a MATH-style table: problem, solution, answer (LaTeX)
    "problem": ["Half of 3/2?", "Box 12.", "A thousand.", "Five dollars.", "Down two."],
    "solution": ["It is $\\frac{3}{4}$.", "$\\boxed{12}$", "1,000", "\\$5", "-2"],
    "answer": ["\\frac{3}{4}", "\\boxed{12}", "1,000", "\\$5", "-2"],
}


def test_a_datasets_folder_with_mapped_columns(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "math_like"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict(MATH_ROWS),
        "test": datasets.Dataset.from_dict({k: v[:2] for k, v in MATH_ROWS.items()}),
    }).save_to_disk(str(folder))
    d = data_config(folder, question_field="problem", answer_field="answer", cot_field="solution")
    train = load_split(d, "train")
    assert [ex.answer for ex in train] == ["3/4", "12", "1000", "5", "-2"]
    assert [ex.cot for ex in train] == MATH_ROWS["solution"]
    assert train[0].question == "Half of 3/2?" and train[0].answer_type == NUMERIC
    assert build_target(train[1]) == "$\\boxed{12}$\nTherefore, the answer is: 12"
    assert len(load_split(d, "test")) == 2
    # the gold answers work with the reward: 3/4 is 0.75, a wrong number gets the partial reward
    said = lambda x: f"so.\nTherefore, the answer is: {x}"
    assert reward_fn([said("0.75"), said("3/4"), said("1"), "no answer"], [train[0]] * 4,
                     "nl") == [1.0, 1.0, 0.1, 0.0]
    with pytest.raises(DataError, match=r"has no 'validation' split \(it has: train, test\)"):
        load_split(d, "validation")


def test_an_unparsable_gold_answer_is_an_error_or_left_out_when_asked(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"question": "a?", "answer": "\\sqrt{2}"},
                                                  {"question": "b?", "answer": "4"}])
    with pytest.raises(DataError, match=r"train\.jsonl:1: field 'answer' '\\\\sqrt\{2\}' is not a number"):
        load_examples(path, "train")
    with pytest.warns(UserWarning, match="left out 1 of 2 rows"):
        kept = load_examples(path, "train", fields=Fields(drop_unparsable=True))
    assert [ex.question for ex in kept] == ["b?"]


def test_hub_source_through_datasets_offline(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "hub_repo"  # what a hub dataset's files look like: one parquet per split
    repo.mkdir()
    datasets.Dataset.from_dict({"q": ["one?", "two?"], "a": ["1", "2"]}).to_parquet(
        str(repo / "train.parquet"))
    datasets.Dataset.from_dict({"q": ["three?"], "a": ["3"]}).to_parquet(str(repo / "test.parquet"))
    fields = Fields(question="q", answer="a")
    test = load_examples(f"hub:{repo}", "test", fields=fields)
    assert [(ex.question, ex.answer, ex.cot) for ex in test] == [("three?", "3", None)]
    assert len(load_examples(f"hub:{repo}", "train", fields=fields)) == 2
    with pytest.raises(DataError, match="has no 'validation' split"):
        load_examples(f"hub:{repo}", "validation", fields=fields)
    d = data_config(f"hub:{repo}", question_field="q", answer_field="a", validation_fraction=0.5)
    train, validation = load_train_and_validation(d, seed=0)  # no hub validation: carved
    assert len(train) == 1 and len(validation) == 1


def test_parquet_and_csv_tables_in_a_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "tables"
    folder.mkdir()
    datasets.Dataset.from_dict({"question": ["p?"], "answer": ["$18.50"]}).to_parquet(
        str(folder / "train.parquet"))
    (folder / "test.csv").write_text("question,answer\nc?,25%\n")
    assert [ex.answer for ex in load_examples(folder, "train")] == ["18.50"]
    assert [(ex.question, ex.answer) for ex in load_examples(folder, "test")] == [("c?", "25")]
    (folder / "test.jsonl").write_text("")
    with pytest.raises(DataError, match="two files for the 'test' split"):
        load_examples(folder, "test")


def test_multiple_choice_columns(tmp_path):
    rows = [
        {"q": "2 + 2?", "options": ["A)3", "B)4", "C)5"], "correct": "B"},
        {"q": "3 + 3?", "options": {"label": ["A", "B"], "text": ["6", "7"]}, "correct": "6"},
        {"q": "1 + 4?", "options": "a ) 4 , b ) 5", "correct": "(b)"},
    ]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    fields = Fields(question="q", answer="correct", choices="options")
    got = load_examples(path, "train", fields=fields)
    assert [(ex.question, ex.answer, ex.answer_type) for ex in got] == [
        ("2 + 2?\na ) 3 , b ) 4 , c ) 5", "b", CHOICE),
        ("3 + 3?\na ) 6 , b ) 7", "a", CHOICE),
        ("1 + 4?\na ) 4 , b ) 5", "b", CHOICE)]
    said = lambda x: f"so.\nTherefore, the answer is: {x}"
    assert reward_fn([said("b"), said("(a)"), said("c")], got, "nl") == [1.0, 1.0, 0.1]
    write_jsonl(path, [{"q": "?", "options": list("123456"), "correct": "a"}])
    with pytest.raises(DataError, match="has 6 options; 2 to 5"):
        load_examples(path, "train", fields=fields)
    write_jsonl(path, [{"q": "?", "options": ["1", "2"], "correct": "9"}])
    with pytest.raises(DataError, match="'correct' '9' is neither an option letter"):
        load_examples(path, "train", fields=fields)


def test_gsm8k_rows_give_verified_programs_for_p_cot(tmp_path):
    broken = {"question": "q?", "answer": "It is <<2*3=6>>6.\n#### 7"}  # 6 is not the gold 7
    path = write_jsonl(tmp_path / "train.jsonl", [NATALIA, broken])
    with pytest.warns(UserWarning, match="1 of 2 GSM8K-style rows have no program"):
        (ex,) = load_examples(path, "train", style="program")
    assert ex.style == "program" and ex.cot.startswith("def solution():")
    scope: dict = {}
    exec(ex.cot, scope)  # noqa: S102 - our own generated program, not model output
    assert scope["solution"]() == 72
    (nl,) = load_examples(path, "train")[:1]
    assert nl.cot == ("Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips "
                      "altogether in April and May.") and nl.answer == "72"


def test_bad_rows_name_the_file_row_and_field(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"question": "a?", "answer": "1"},
                                                  {"prompt": "b?", "answer": "2"}])
    with pytest.raises(DataError,
                       match=r"train\.jsonl:2: missing field 'question' \(has: answer, prompt\)"):
        load_examples(path, "train")
    write_jsonl(path, [{"question": 5, "answer": "1"}])
    with pytest.raises(DataError, match="field 'question' must be a string, got int"):
        load_examples(path, "train")
    write_jsonl(path, [{"question": "a?", "answer": [1]}])
    with pytest.raises(DataError, match="field 'answer' must be a string or a number, got list"):
        load_examples(path, "train")
    with pytest.raises(DataError, match="answer_type"):
        Fields(answer_type="free")
    with pytest.raises(DataError, match=r"config.data.test_file='/no/such.jsonl' is not a file"):
        load_split(data_config(tmp_path, test_file="/no/such.jsonl"), "test")


@pytest.mark.parametrize("text, expected", [
    ("72", "72"), ("1,000", "1000"), ("$18.50", "18.50"), ("25%", "25"), ("-3", "-3"),
    ("\\frac{3}{4}", "3/4"), ("-\\dfrac{1}{2}", "-1/2"), ("\\boxed{\\frac{7}{2}}", "7/2"),
    ("$5$", "5"), ("So the total is $\\boxed{5}$ apples.", "5"), ("90^\\circ", "90"),
    ("10\\text{ cm}", "10"), ("\\$1,250", "1250"),
    ("\\sqrt{2}", None), ("x + 1", None), ("", None), ("3, 4", None),
])
def test_plain_numbers_by_hand(text, expected):
    assert plain_number(text) == expected


def test_no_warning_for_clean_data(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_examples(folder, "train")
