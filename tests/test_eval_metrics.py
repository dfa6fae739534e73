"""Evaluation math against hand-computed numbers: voting, pass@k, reranking, the results table."""

from __future__ import annotations

import json

import pytest

from reft_jax.eval.rerank import rerank_pick
from reft_jax.eval.results import (
    PredictionWriter,
    accuracy_vs_k,
    completed,
    format_table,
    plot_accuracy_vs_k,
    powers_of_two,
    read_predictions,
    summarize,
)
from reft_jax.eval.voting import majority_vote, pass_at_k, voting_accuracy_at_k


# --- majority vote ---------------------------------------------------------------------------

def test_vote_numbers_within_tolerance_are_one_vote():
    assert majority_vote([3.0, 3.004, 5.0]) == 3.0
    assert majority_vote([5.0, 3.004, 3.0]) == 3.004  # the representative is the first member
    # 3.0 and 3.015 are 0.015 apart: two clusters, the tie goes to the first
    assert majority_vote([3.0, 3.015]) == 3.0


def test_vote_clusters_by_first_member_not_chaining():
    # 3.008 joins 3.0; 3.016 is 0.016 from the representative 3.0, so it starts its own cluster
    assert majority_vote([3.0, 3.008, 3.016, 3.016, 3.016]) == 3.016


def test_vote_tie_goes_to_first_appearing():
    assert majority_vote([7.0, 8.0, 8.0, 7.0]) == 7.0
    assert majority_vote([8.0, 7.0, 7.0, 8.0]) == 8.0
    assert majority_vote([None, 2.0, 1.0]) == 2.0


def test_vote_ignores_none_and_all_none_is_none():
    assert majority_vote([None, None, 4.0, None]) == 4.0
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_vote_letters_by_equality():
    assert majority_vote(["b", "c", "c", None, "b", "c"]) == "c"
    assert majority_vote(["a", "b"]) == "a"


def test_voting_accuracy_uses_a_prefix_of_k_samples():
    answers = [[1.0, 2.0, 2.0], [None, 5.0, 5.0]]
    correct = [[True, False, False], [False, True, True]]
    assert voting_accuracy_at_k(answers, correct, 1) == 0.5   # q1 right, q2 no answer
    assert voting_accuracy_at_k(answers, correct, 2) == 1.0   # q1 tie -> 1.0, q2 -> 5.0
    assert voting_accuracy_at_k(answers, correct, 3) == 0.5   # q1 -> 2.0 wrong
    with pytest.raises(ValueError, match="fewer than k=4"):
        voting_accuracy_at_k(answers, correct, 4)


# --- pass@k ----------------------------------------------------------------------------------

@pytest.mark.parametrize("n, c, k, expected", [
    (4, 1, 2, 0.5),          # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (5, 2, 2, 0.7),          # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (5, 1, 1, 0.2),          # c / n
    (4, 2, 2, 5 / 6),        # 1 - C(2,2)/C(4,2) = 1 - 1/6
    (6, 0, 3, 0.0),
    (6, 6, 3, 1.0),
    (4, 1, 4, 1.0),          # k = n: any correct sample is in the one subset
    (4, 0, 4, 0.0),
    (100, 1, 1, 0.01),
    (100, 1, 100, 1.0),
])
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n, c, k", [(3, 1, 4), (3, 1, 0), (3, 4, 1), (3, -1, 1)])
def test_pass_at_k_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# --- reranking -------------------------------------------------------------------------------

def test_rerank_ignores_samples_without_answers():
    assert rerank_pick([None, 2.0, 3.0], [0.99, 0.4, 0.6]) == 2
    assert rerank_pick([1.0, 2.0], [None, 0.1]) == 1


def test_rerank_tie_goes_to_earliest():
    assert rerank_pick([1.0, 2.0, 3.0], [0.5, 0.8, 0.8]) == 1


def test_rerank_nothing_to_pick():
    assert rerank_pick([None, None], [0.5, 0.6]) is None
    assert rerank_pick([1.0, 2.0], [None, None]) is None
    assert rerank_pick([], []) is None


# --- results: 2 models x 3 questions x 4 samples, every number worked out by hand --------------

def _s(answer, correct, rm=None):
    return {"answer": answer, "correct": correct, "rm_score": rm}


def _rec(model, qid, gold, greedy, samples, voted, reranked):
    return {"model": model, "id": qid, "gold": gold, "greedy": {"answer": greedy[0], "correct": greedy[1]},
            "samples": samples, "voted": {"answer": voted[0], "correct": voted[1]},
            "reranked": None if reranked is None else {"answer": reranked[0], "correct": reranked[1]}}


# Model "sft" has reward-model scores. Per question c (correct samples of 4):
#   q1: c=2, greedy right, vote 3.0 right, rerank -> 3.004 (0.9) right
#   q2: c=2, greedy wrong, vote tie 8 vs 7 -> 8 right, rerank -> 7.0 (0.8) wrong
#   q3: c=0, greedy None, vote 2.0 wrong, rerank -> 2.0 wrong (the only scored answer)
# Model "reft" has no reward model:
#   q1: c=4 (all right); q2: c=1, vote 7 (3 votes) wrong; q3: c=0
SFT = [
    _rec("sft", "q1", "3", (3.0, True),
         [_s(3.0, True, 0.2), _s(3.004, True, 0.9), _s(5.0, False, 0.5), _s(None, False)],
         (3.0, True), (3.004, True)),
    _rec("sft", "q2", "8", (7.0, False),
         [_s(8.0, True, 0.1), _s(7.0, False, 0.8), _s(7.0, False, 0.3), _s(8.0, True, 0.2)],
         (8.0, True), (7.0, False)),
    _rec("sft", "q3", "9", (None, False),
         [_s(None, False), _s(None, False), _s(None, False), _s(2.0, False, 0.4)],
         (2.0, False), (2.0, False)),
]
REFT = [
    _rec("reft", "q1", "3", (3.0, True), [_s(3.0, True)] * 4, (3.0, True), None),
    _rec("reft", "q2", "8", (8.0, True),
         [_s(8.0, True), _s(7.0, False), _s(7.0, False), _s(7.0, False)], (7.0, False), None),
    _rec("reft", "q3", "9", (1.0, False), [_s(1.0, False)] * 4, (1.0, False), None),
]
RECORDS = [SFT[0], REFT[0], SFT[1], REFT[1], SFT[2], REFT[2]]  # interleaved, sft appears first


def test_summarize_k_equals_n():
    sft, reft = summarize(RECORDS, k=4)
    assert sft == {"model": "sft", "top1": 33.33, "voting": 66.67, "rerank": 33.33,
                   "pass@1": 33.33,        # (2/4 + 2/4 + 0) / 3
                   "pass@k": 66.67,        # (1 + 1 + 0) / 3
                   "extractable": 66.67, "n_questions": 3}
    assert reft == {"model": "reft", "top1": 66.67, "voting": 33.33, "rerank": None,
                    "pass@1": 41.67,       # (4/4 + 1/4 + 0) / 3
                    "pass@k": 66.67,       # (1 + 1 + 0) / 3
                    "extractable": 100.0, "n_questions": 3}


def test_summarize_k_less_than_n():
    sft, reft = summarize(RECORDS, k=2)
    assert sft["pass@k"] == 55.56    # (5/6 + 5/6 + 0) / 3: 1 - C(2,2)/C(4,2) = 5/6
    assert reft["pass@k"] == 50.0    # (1 + 1/2 + 0) / 3: 1 - C(3,2)/C(4,2) = 1/2
    assert sft["pass@1"] == 33.33 and reft["pass@1"] == 41.67


def test_summarize_fewer_samples_than_k_names_model_and_id():
    with pytest.raises(ValueError, match=r"'sft'.*'q1'.*fewer than k=5"):
        summarize(RECORDS, k=5)


def test_summarize_rejects_duplicate_question():
    with pytest.raises(ValueError, match="more than one record"):
        summarize([SFT[0], SFT[0]], k=4)


def test_format_table_has_models_and_numbers():
    table = format_table(summarize(RECORDS, k=4), k=4)
    lines = table.splitlines()
    assert len(lines) == 3
    assert "Top-1" in lines[0] and "Voting@4" in lines[0] and "Rerank@4" in lines[0]
    assert lines[1].split() == ["sft", "33.33", "66.67", "33.33", "66.67", "66.67"]
    assert lines[2].split() == ["reft", "66.67", "33.33", "-", "66.67", "100.00"]
    assert len({len(line) for line in lines}) == 1  # aligned


def test_accuracy_vs_k():
    curves = accuracy_vs_k(RECORDS, [1, 2, 4])
    assert list(curves) == ["sft", "reft"]
    # sft first samples: 3.0 right, 8.0 right, None -> 2/3 at every k (q2 at k=2: tie -> 8.0)
    assert curves["sft"] == {"k": [1, 2, 4], "voting": [66.67, 66.67, 66.67],
                             "pass@k": [33.33, 55.56, 66.67]}
    # reft q2: k=1 [8] right, k=2 [8, 7] tie -> 8 right, k=4 7 wins -> wrong
    assert curves["reft"] == {"k": [1, 2, 4], "voting": [66.67, 66.67, 33.33],
                              "pass@k": [41.67, 50.0, 66.67]}


def test_powers_of_two():
    assert powers_of_two(1) == [1]
    assert powers_of_two(8) == [1, 2, 4, 8]
    assert powers_of_two(100) == [1, 2, 4, 8, 16, 32, 64, 100]


def test_plot_is_written(tmp_path):
    path = tmp_path / "acc_vs_k.png"
    plot_accuracy_vs_k(accuracy_vs_k(RECORDS, [1, 2, 4]), path)
    data = path.read_bytes()
    assert len(data) > 0 and data[:8] == b"\x89PNG\r\n\x1a\n"


# --- predictions file ------------------------------------------------------------------------

def test_writer_round_trip_and_resume(tmp_path):
    path = tmp_path / "preds.jsonl"
    with PredictionWriter(path) as w:
        assert w.done_keys() == set()
        w.write(SFT[0])
        w.write(REFT[0])
        assert w.done_keys() == {("sft", "q1"), ("reft", "q1")}
    assert read_predictions(path) == [SFT[0], REFT[0]]
    assert completed(path) == {("sft", "q1"), ("reft", "q1")}
    with PredictionWriter(path) as w:  # resuming appends
        assert w.done_keys() == {("sft", "q1"), ("reft", "q1")}
        w.write(SFT[1])
    assert [r["id"] for r in read_predictions(path)] == ["q1", "q1", "q2"]


def test_truncated_last_line_is_ignored_and_cut_on_resume(tmp_path):
    path = tmp_path / "preds.jsonl"
    whole = json.dumps(SFT[0]) + "\n"
    path.write_text(whole + json.dumps(SFT[1])[:40], encoding="utf-8")  # killed mid-write
    assert completed(path) == {("sft", "q1")}
    with PredictionWriter(path) as w:
        w.write(SFT[1])
    assert path.read_text(encoding="utf-8") == whole + json.dumps(SFT[1]) + "\n"
    assert [r["id"] for r in read_predictions(path)] == ["q1", "q2"]


def test_completed_missing_file_is_empty(tmp_path):
    assert completed(tmp_path / "absent.jsonl") == set()


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "preds.jsonl"
    path.write_text(json.dumps(SFT[0]) + "\n{not json\n" + json.dumps(SFT[1]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"preds\.jsonl:2: malformed"):
        read_predictions(path)
    with pytest.raises(ValueError, match=r"preds\.jsonl:2: malformed"):
        completed(path)


def test_record_without_model_names_line(tmp_path):
    path = tmp_path / "preds.jsonl"
    path.write_text(json.dumps({"id": "q1"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"preds\.jsonl:1: missing field 'model'"):
        read_predictions(path)
