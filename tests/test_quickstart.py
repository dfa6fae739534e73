"""The README's main job, shrunk to a few steps of each stage: every output exists and agrees
(the printed table is results.json, which follows from predictions.jsonl)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

SHRUNK = ["--config.data.max_train_examples=96", "--config.sft.epochs=2",
          "--config.sft.eval_every_epochs=1", "--config.reft.warmup_min_accuracy=0.0",
          "--config.reft.warmup_epoch=1", "--config.reft.epochs=1",
          "--config.rm.samples_per_question=2", "--config.rm.epochs=1",
          "--config.eval.vote_samples=2", "--config.eval.max_examples=16",
          "--config.eval.max_new_tokens=48", "--config.reft.max_length=80"]


def test_shrunk_quickstart_runs_every_stage_and_its_outputs_agree(tmp_path):
    out = subprocess.run([sys.executable, "-m", "reft_jax.main", "--config=configs/quickstart.py",
                          f"--config.workdir={tmp_path}", *SHRUNK], cwd=REPO,
                         capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for stage in ("init", "sft", "reft", "rm", "eval"):
        assert f"== stage {stage} ==" in out.stdout
    assert (tmp_path / "scratch" / "tokenizer.json").exists()
    assert (tmp_path / "reft" / "best" / "model.safetensors").exists()
    assert (tmp_path / "rm" / "best").exists()
    assert (tmp_path / "eval" / "accuracy_vs_k.png").stat().st_size > 0
    assert (tmp_path / "eval" / "accuracy_over_training.png").stat().st_size > 0
    warmup = json.loads((tmp_path / "reft" / "warmup.json").read_text())
    assert warmup["sft_epoch"] is not None  # RL branched off this run's SFT

    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    records = [json.loads(x) for x in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    rows = {row["model"]: row for row in results["rows"]}
    assert set(rows) == {"sft", "sft_last", "reft"} and results["k"] == 2
    for model, row in rows.items():
        mine = [r for r in records if r["model"] == model]
        assert row["n_questions"] == len(mine) == 16
        top1 = 100.0 * sum(r["greedy"]["correct"] for r in mine) / len(mine)
        valid = 100.0 * sum(r["extra"]["valid_chain"] for r in mine) / len(mine)
        assert row["top1"] == round(top1, 2) and row["valid_chain"] == round(valid, 2)
        # the printed table carries the same numbers
        lines = out.stdout.splitlines()
        header = max(i for i, x in enumerate(lines) if x.split()[:2] == ["model", "Top-1"])
        line = next(x for x in lines[header + 1:] if x.split()[:1] == [model])
        assert line.split()[1] == f"{row['top1']:.2f}"
