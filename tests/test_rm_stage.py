"""The rm stage end to end on a tiny model: the sampled set and its cache, resume, export, errors."""

from __future__ import annotations

import json
import re

import pytest

from reft_jax.config import default_config
from reft_jax.data import load_examples, load_train_and_validation
from reft_jax.data.prompts import ANSWER_MARKER
from reft_jax.errors import ReftError
from reft_jax.eval.stage import run_eval
from reft_jax.models import load_pretrained
from reft_jax.models.reward_model import HEAD_FILE, load_reward_model
from reft_jax.train.reward_model import run_reward_model
from reft_jax.train.rm_samples import SAMPLES, DrawSettings, draw_samples
from tests.eval_fixtures import save_answering_model, write_questions


@pytest.fixture(scope="module")
def stage_assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("rm_stage")
    return {"model": save_answering_model(root / "model"),
            "data": write_questions(root / "questions.jsonl", 16, seed=1)}


def make_config(stage_assets, workdir, **rm):
    c = default_config()
    c.workdir = str(workdir)
    c.stages = "rm"
    c.model.source = str(stage_assets["model"])
    c.data.dataset = str(stage_assets["data"])
    c.data.validation_fraction = 0.25
    c.rm.source = str(stage_assets["model"])
    c.rm.samples_per_question = 4
    c.rm.max_new_tokens = 6
    c.rm.epochs = 2
    c.rm.batch_size = 8
    c.rm.learning_rate = 1e-3
    c.rm.save_every_steps = 0  # checkpoints at epoch ends only (saves take time)
    c.eval.batch_size = 4
    for key, value in rm.items():
        c.rm[key] = value
    return c


def last_answer(text: str):
    found = re.findall(re.escape(ANSWER_MARKER) + r" (\d)", text)
    return int(found[-1]) if found else None


@pytest.mark.slow
def test_rm_stage_samples_trains_validates_and_exports(stage_assets, tmp_path):
    config = make_config(stage_assets, tmp_path)
    run_reward_model(config, log=lambda *_: None)
    rm_dir = tmp_path / "rm"
    # the sampled set: one line per training question (validation ones included), texts unique
    # within a question, each labelled by its own last answer against the gold one
    golds = {ex.id: int(float(ex.answer))
             for ex in load_examples(str(stage_assets["data"]), "train")}
    records = [json.loads(x) for x in (rm_dir / "samples.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == sorted(golds)
    for r in records:
        texts = [s["text"] for s in r["samples"]]
        assert 1 <= len(texts) <= 4 and len(set(texts)) == len(texts)
        for s in r["samples"]:
            assert s["correct"] == (last_answer(s["text"]) == golds[r["id"]])
    assert any(s["correct"] for r in records for s in r["samples"])
    metrics = [json.loads(x) for x in (rm_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [m["step"] for m in metrics if m["kind"] == "train"]
    assert steps == list(range(1, len(steps) + 1))
    validation = [m for m in metrics if m["kind"] == "validation"]
    assert len(validation) == 2 and all(0.0 <= m["accuracy"] <= 1.0 for m in validation)
    _, held_out = load_train_and_validation(config.data, config.seed)
    held_out_ids = {ex.id for ex in held_out}
    assert 0 < len(held_out_ids) < len(golds)
    assert all(m["samples"] == sum(len(r["samples"]) for r in records if r["id"] in held_out_ids)
               for m in validation)
    assert (rm_dir / "best" / HEAD_FILE).exists()
    load_reward_model(rm_dir / "best")

    # run again: the checkpoint is resumed (training is done) and nothing is resampled
    cached = (rm_dir / "samples.jsonl").read_text()
    messages = []
    run_reward_model(config, log=messages.append)
    assert any(f"resuming from step {len(steps)}" in m for m in messages)
    assert not any("sampling" in m for m in messages)
    assert (rm_dir / "samples.jsonl").read_text() == cached

    # stages=eval reranks with <workdir>/rm/best when eval.reward_model is left empty
    config.eval.models = str(stage_assets["model"])
    config.eval.split = "validation"
    config.eval.vote_samples = 4
    config.eval.max_new_tokens = 6
    results = json.loads((run_eval(config, log=lambda *_: None) / "results.json").read_text())
    assert results["rows"][0]["rerank"] is not None


@pytest.mark.slow
def test_sampling_killed_midway_continues_with_the_same_samples(stage_assets, tmp_path):
    """A cache holding the first batch (and a half-written line) is completed, not redrawn, and
    ends as a draw in one go would."""
    config = make_config(stage_assets, tmp_path)
    lm, tokenizer = load_pretrained(stage_assets["model"])
    questions = load_examples(str(stage_assets["data"]), "train")[:8]
    settings = DrawSettings.from_config(config, stage_assets["model"])
    draw = lambda qs, folder, log=lambda *_: None: draw_samples(
        lm, tokenizer, qs, settings, folder, batch=4, program_timeout=5.0, log=log)
    whole = draw(questions, tmp_path / "whole")
    draw(questions[:4], tmp_path / "resumed")
    with (tmp_path / "resumed" / SAMPLES).open("a") as f:
        f.write('{"model": "half a line')
    messages = []
    resumed = draw(questions, tmp_path / "resumed", messages.append)
    assert any("for 4 of 8 questions" in m for m in messages)
    assert resumed == whole
    key = lambda line: json.loads(line)["id"]
    assert sorted((tmp_path / "resumed" / SAMPLES).read_text().splitlines(), key=key) == sorted(
        (tmp_path / "whole" / SAMPLES).read_text().splitlines(), key=key)
    # a cache drawn another way is refused, never mixed in
    other = DrawSettings.from_config(make_config(stage_assets, tmp_path, samples_per_question=2),
                                     stage_assets["model"])
    with pytest.raises(ReftError, match="samples_per_question"):
        draw_samples(lm, tokenizer, questions, other, tmp_path / "whole", batch=4,
                     program_timeout=5.0)


def test_missing_source_names_the_key(stage_assets, tmp_path):
    with pytest.raises(ReftError, match="config.rm.source is empty"):
        run_reward_model(make_config(stage_assets, tmp_path, source=""), log=lambda *_: None)
    with pytest.raises(ReftError, match="config.rm.source='/no/such'"):
        run_reward_model(make_config(stage_assets, tmp_path, source="/no/such"),
                         log=lambda *_: None)
