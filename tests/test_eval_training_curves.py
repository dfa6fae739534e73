"""The plot of validation accuracy over training: SFT's ledger and the RL stages' validation rows
on one epoch axis, RL shifted to the SFT epoch it branched from."""

import json
import pathlib

from reft_jax.eval.training_curves import plot_training_curves, training_curves, warmup_record


def write_run(workdir: pathlib.Path, warmup_epoch):
    (workdir / "sft").mkdir(parents=True)
    (workdir / "sft" / "validation.json").write_text(
        json.dumps({"5": 0.1, "10": 0.3, "15": None, "20": 0.4}))
    (workdir / "reft").mkdir()
    rows = [{"step": 1, "kind": "train", "accuracy": 0.9},  # training accuracy: not drawn
            {"step": 4, "kind": "validation", "accuracy": 0.35},
            {"step": 8, "kind": "validation", "accuracy": 0.5},
            {"step": 8, "kind": "test", "accuracy": 0.45}]  # the test split: never drawn
    (workdir / "reft" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    warmup = workdir / "sft" / f"epoch_{warmup_epoch}"
    (workdir / "reft" / "warmup.json").write_text(json.dumps(warmup_record(warmup, workdir)))


def test_rl_curve_starts_at_its_warmup_epoch_and_shares_the_branch_point(tmp_path):
    write_run(tmp_path, 10)
    curves = training_curves(tmp_path)
    assert curves["sft"] == ([5, 10, 20], [0.1, 0.3, 0.4])  # the unevaluated epoch 15 left out
    assert curves["reft"] == ([10, 11, 12], [0.3, 0.35, 0.5])
    plot_training_curves(curves, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_outside_warmup_checkpoint_counts_rl_epochs_from_one(tmp_path):
    write_run(tmp_path, 10)
    outside = warmup_record(tmp_path / "elsewhere" / "epoch_10", tmp_path)
    assert outside["sft_epoch"] is None
    (tmp_path / "reft" / "warmup.json").write_text(json.dumps(outside))
    assert training_curves(tmp_path)["reft"] == ([1, 2], [0.35, 0.5])


def test_no_runs_no_curves(tmp_path):
    assert training_curves(tmp_path) == {}

