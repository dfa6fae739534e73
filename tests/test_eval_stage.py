"""The eval stage end to end on tiny models: outputs, numbers recomputed by hand, resume, bad input."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest
from flax import nnx

from reft_jax.config import default_config
from reft_jax.errors import ReftError
from reft_jax.eval import stage as eval_stage
from reft_jax.eval.stage import evaluate_models, run_eval
from reft_jax.models import load_pretrained
from reft_jax.models.reward_model import RewardModel, save_reward_model
from tests.conftest import REPO
from tests.eval_fixtures import save_answering_model, write_questions
from tests.tiny_hf import save_tiny, tiny_tokenizer

pytestmark = pytest.mark.slow
K = 4


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Two tiny models (one as the run's SFT choice), a reward model, 8 questions."""
    root = tmp_path_factory.mktemp("eval_assets")
    model = save_answering_model(root / "model", seed=0)
    save_answering_model(root / "sft_epoch", seed=1)
    lm, tok = load_pretrained(model)
    save_reward_model(RewardModel(lm, rngs=nnx.Rngs(3)), tok, root / "rm")
    return {"root": root, "model": model, "sft": root / "sft_epoch", "rm": root / "rm",
            "data": write_questions(root / "questions.jsonl", 8)}


def make_workdir(assets, workdir):
    """A workdir whose SFT stage chose `sft_epoch` (what `sft` resolves to)."""
    (workdir / "sft").mkdir(parents=True, exist_ok=True)
    if not (workdir / "sft" / "epoch_1").exists():
        shutil.copytree(assets["sft"], workdir / "sft" / "epoch_1")
    (workdir / "sft" / "best.json").write_text(json.dumps({"epoch": 1, "folder": "epoch_1"}))
    return workdir


def make_config(assets, workdir, **eval_settings):
    c = default_config()
    c.workdir = str(make_workdir(assets, workdir))
    c.stages = "eval"
    c.model.source = str(assets["model"])
    c.data.dataset = str(assets["data"])
    c.data.validation_fraction = 0.0
    c.eval.split = "train"  # a file dataset has no test split
    c.eval.models = f"sft,{assets['model']}"
    c.eval.reward_model = str(assets["rm"])
    c.eval.vote_samples = K
    c.eval.max_new_tokens = 6
    c.eval.batch_size = 4
    for key, value in eval_settings.items():
        c.eval[key] = value
    return c


@pytest.fixture(scope="module")
def full_run(assets, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("eval_full")
    config = make_config(assets, workdir)
    messages = []
    out = run_eval(config, log=messages.append)
    return {"config": config, "out": out, "messages": messages}


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- an independent recomputation of the table from predictions.jsonl -------------------------

def right(answer, gold) -> bool:
    return answer is not None and abs(float(answer) - float(gold)) <= 1e-2


def own_vote(answers):
    """Most frequent answer (numbers within 1e-2 count as one; the answers here are integers,
    so equality suffices); a tie goes to the answer seen first."""
    counts, first = {}, {}
    for i, a in enumerate(answers):
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
            first.setdefault(a, i)
    if not counts:
        return None
    return max(counts, key=lambda a: (counts[a], -first[a]))


def own_rerank(samples):
    best = None
    for s in samples:
        if s["answer"] is not None and (best is None or s["rm_score"] > best["rm_score"]):
            best = s
    return None if best is None else best["answer"]


def own_rows(records, k):
    rows = []
    for model in dict.fromkeys(r["model"] for r in records):
        recs = [r for r in records if r["model"] == model]
        pct = lambda xs: round(100.0 * sum(xs) / len(xs), 2)
        has_rm = any(s["rm_score"] is not None for r in recs for s in r["samples"])
        n = [len(r["samples"]) for r in recs]
        c = [sum(right(s["answer"], r["gold"]) for s in r["samples"]) for r in recs]
        rows.append({
            "model": model,
            "top1": pct([right(r["greedy"]["answer"], r["gold"]) for r in recs]),
            "voting": pct([right(own_vote([s["answer"] for s in r["samples"]]), r["gold"])
                           for r in recs]),
            "rerank": pct([right(own_rerank(r["samples"]), r["gold"]) for r in recs])
            if has_rm else None,
            "pass@1": pct([ci / ni for ci, ni in zip(c, n)]),
            "pass@k": pct([1 - math.comb(ni - ci, k) / math.comb(ni, k) for ci, ni in zip(c, n)]),
            "extractable": pct([r["greedy"]["answer"] is not None for r in recs]),
            "n_questions": len(recs),
        })
    return rows


def assert_rows_equal(got, want):
    assert [r["model"] for r in got] == [r["model"] for r in want]
    for g, w in zip(got, want):
        for key, value in w.items():
            if value is None or isinstance(value, str):
                assert g[key] == value, (g["model"], key)
            else:
                assert g[key] == pytest.approx(value, abs=0.011), (g["model"], key)


def test_eval_writes_outputs_that_follow_from_predictions(full_run, assets):
    out = full_run["out"]
    assert {p.name for p in out.iterdir()} >= {"predictions.jsonl", "results.json",
                                               "accuracy_vs_k.png"}
    assert (out / "accuracy_vs_k.png").stat().st_size > 0
    records = read_lines(out / "predictions.jsonl")
    assert len(records) == 2 * 8
    for r in records:  # every stored grade agrees with the gold answer
        assert len(r["samples"]) == K
        assert r["greedy"]["correct"] == right(r["greedy"]["answer"], r["gold"])
        assert r["voted"]["correct"] == right(r["voted"]["answer"], r["gold"])
        assert r["reranked"]["correct"] == right(r["reranked"]["answer"], r["gold"])
        for s in r["samples"]:
            assert s["correct"] == right(s["answer"], r["gold"])
            assert 0.0 < s["rm_score"] < 1.0
    results = json.loads((out / "results.json").read_text())
    assert results["split"] == "train" and results["k"] == K
    assert [row["model"] for row in results["rows"]] == ["sft", str(assets["model"])]
    assert_rows_equal(results["rows"], own_rows(records, K))
    # the tiny models answer often enough that the numbers are not all trivial
    assert any(s["answer"] is not None for r in records for s in r["samples"])
    assert any(row["pass@k"] > 0 for row in results["rows"])


def test_printed_table_equals_the_rows(full_run):
    results = json.loads((full_run["out"] / "results.json").read_text())
    table = next(m for m in full_run["messages"] if "Voting@" in m)
    lines = table.splitlines()
    header = lines[1].split()
    assert header == ["model", "Top-1", f"Voting@{K}", f"Rerank@{K}", f"pass@{K}", "extractable"]
    for line, row in zip(lines[2:], results["rows"], strict=True):
        cells = line.split()
        assert cells[0] == row["model"]
        want = [row[key] for key in ("top1", "voting", "rerank", "pass@k", "extractable")]
        assert cells[1:] == [f"{v:.2f}" for v in want]


def test_resumed_eval_equals_uninterrupted(full_run, assets, tmp_path):
    """A run killed after 5 records (the 6th half written) and run again ends identically."""
    config = make_config(assets, tmp_path / "resumed")
    out = tmp_path / "resumed" / "eval"
    out.mkdir(parents=True)
    full = (full_run["out"] / "predictions.jsonl").read_text().splitlines(keepends=True)
    (out / "predictions.jsonl").write_text("".join(full[:5]) + full[5][:40])
    messages = []
    run_eval(config, log=messages.append)
    assert any("5 of 16 (model, question) pairs already done" in m for m in messages)
    assert json.loads((out / "results.json").read_text()) == json.loads(
        (full_run["out"] / "results.json").read_text())
    key = lambda r: (r["model"], r["id"])
    assert sorted(read_lines(out / "predictions.jsonl"), key=key) == sorted(
        read_lines(full_run["out"] / "predictions.jsonl"), key=key)


def test_without_reward_model_rerank_is_null_and_the_hook_adds_columns(assets, tmp_path):
    config = make_config(assets, tmp_path, models="sft", reward_model="", max_examples=4)
    out = evaluate_models(config, log=lambda *_: None,
                          record_hook=lambda ex, text: {"words": len(text.split())})
    records = read_lines(out / "predictions.jsonl")
    assert len(records) == 4
    assert all(r["reranked"] is None and r["extra"]["words"] >= 0 for r in records)
    assert all(s["rm_score"] is None for r in records for s in r["samples"])
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert rows[0]["rerank"] is None
    assert_rows_equal(rows, own_rows(records, K))


# --- bad input: one clear error, before any model is loaded ----------------------------------

@pytest.fixture
def no_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(eval_stage, "load_pretrained", refuse)
    monkeypatch.setattr(eval_stage, "load_reward_model", refuse)


def test_bad_k_is_an_error_before_work(assets, tmp_path, full_run, no_loading):
    with pytest.raises(ReftError, match="vote_samples must be >= 1"):
        run_eval(make_config(assets, tmp_path / "a", vote_samples=0), log=lambda *_: None)
    # k larger than the samples an earlier eval drew (its predictions would be resumed)
    config = make_config(assets, tmp_path / "b", vote_samples=2 * K)
    (tmp_path / "b" / "eval").mkdir()
    shutil.copy(full_run["out"] / "predictions.jsonl", tmp_path / "b" / "eval")
    with pytest.raises(ReftError, match=f"holds {K} samples .*vote_samples={2 * K}"):
        run_eval(config, log=lambda *_: None)


def test_missing_model_is_an_error_before_work(assets, tmp_path, no_loading):
    with pytest.raises(ReftError, match="eval.models: '/no/such/model'"):
        run_eval(make_config(assets, tmp_path, models="sft,/no/such/model"), log=lambda *_: None)
    with pytest.raises(ReftError, match="'reft' has no model"):
        run_eval(make_config(assets, tmp_path, models="reft"), log=lambda *_: None)
    assert not (tmp_path / "eval").exists()


def test_dataset_without_test_split_is_an_error_before_work(assets, tmp_path, no_loading):
    with pytest.raises(ReftError, match="has no .test. split"):
        run_eval(make_config(assets, tmp_path, split="test"), log=lambda *_: None)


def test_reward_model_of_another_tokenizer_is_an_error_before_work(assets, tmp_path, no_loading):
    other = tmp_path / "other_rm"
    save_tiny(other, "llama")  # the plain tiny tokenizer: another vocabulary
    lm, _ = load_pretrained(other)
    save_reward_model(RewardModel(lm, rngs=nnx.Rngs(0)), tiny_tokenizer(), other)
    with pytest.raises(ReftError, match="another tokenizer"):
        run_eval(make_config(assets, tmp_path, reward_model=str(other)), log=lambda *_: None)


def test_cli_reports_a_missing_model_in_one_line(assets, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "reft_jax.main", "--config=configs/gsm8k.py", "--config.stages=eval",
         f"--config.workdir={tmp_path}", "--config.eval.models=reft"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "eval.models" in out.stderr and "Traceback" not in out.stderr
