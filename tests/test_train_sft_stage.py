"""The SFT stage end to end on a tiny model: resume, NaN, SIGTERM, outputs, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from reft_jax.config import default_config
from reft_jax.data import DataError
from reft_jax.errors import ReftError
from reft_jax.train.sft import epoch_folder, run_sft
from tests.conftest import REPO
from tests.tiny_hf import save_tiny

pytestmark = pytest.mark.slow


def write_dataset(path, n=12):
    """GSM8K-format records whose words the tiny word-level tokenizer knows."""
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        for i in range(n):
            q = " ".join(f"w{j}" for j in rng.integers(4, 90, 5))
            a = " ".join(f"w{j}" for j in rng.integers(4, 90, 3 + i % 4))
            f.write(json.dumps({"question": q, "answer": f"{a}\n#### {i}"}) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_llama")
    save_tiny(folder, "llama")
    return folder


def make_config(tmp_path, model, dataset, **sft):
    c = default_config()
    c.workdir = str(tmp_path / "run")
    c.stages = "sft"
    c.model.source = str(model)
    c.data.dataset = str(dataset)
    c.data.validation_fraction = 0.2
    c.sft.epochs = 2
    c.sft.batch_size = 4
    c.sft.learning_rate = 1e-3
    c.sft.save_every_steps = 2
    c.eval.max_examples = 2
    c.eval.max_new_tokens = 4
    c.eval.batch_size = 2
    for key, value in sft.items():
        c.sft[key] = value
    return c


def final_params(config):
    return load_file(epoch_folder(__import__("pathlib").Path(config.workdir), 2) / "model.safetensors")


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, tiny_model):
    data = write_dataset(tmp_path / "train.jsonl")
    straight = make_config(tmp_path / "a", tiny_model, data)
    run_sft(straight, log=lambda *_: None)
    interrupted = make_config(tmp_path / "b", tiny_model, data, stop_after_step=3)
    run_sft(interrupted, log=lambda *_: None)
    assert not epoch_folder(tmp_path / "b" / "run", 2).exists()
    interrupted.sft.stop_after_step = 0
    messages = []
    run_sft(interrupted, log=messages.append)
    assert any("resuming from step 3" in m for m in messages)
    a, b = final_params(straight), final_params(interrupted)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # the run left its records behind
    records = [json.loads(x) for x in (tmp_path / "a/run/sft/metrics.jsonl").read_text().splitlines()]
    # 12 records, 2 held out for validation, batches of 4: 2 steps per epoch, 2 epochs
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    assert {"validation", "test"} <= {r["kind"] for r in records}
    assert (tmp_path / "a/run/sft/metrics.png").stat().st_size > 0
    assert any((tmp_path / "a/run/sft/tensorboard").iterdir())


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_model):
    data = write_dataset(tmp_path / "train.jsonl")
    config = make_config(tmp_path, tiny_model, data, learning_rate=1e30, warmup_ratio=0.0,
                         save_every_steps=1)
    with pytest.raises(ReftError, match="non-finite"):
        run_sft(config, log=lambda *_: None)
    checkpoints = tmp_path / "run" / "sft" / "checkpoints"
    steps = sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())
    assert steps and steps[-1] >= 1
    records = [json.loads(x) for x in (tmp_path / "run/sft/metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in records if r["kind"] == "train")


def test_sigterm_saves_and_exits_zero(tmp_path, tiny_model):
    data = write_dataset(tmp_path / "train.jsonl", n=40)
    cmd = [sys.executable, "-m", "reft_jax.main", "--config=configs/gsm8k.py",
           "--config.stages=sft", f"--config.model.source={tiny_model}",
           f"--config.data.dataset={data}", f"--config.workdir={tmp_path / 'run'}",
           "--config.sft.epochs=1000", "--config.sft.batch_size=4", "--config.sft.save_every_steps=0"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = tmp_path / "run" / "sft" / "metrics.jsonl"
    deadline = time.time() + 240
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no training step within the time limit"
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "SIGTERM" in out
    assert any(p.name.isdigit() for p in (tmp_path / "run" / "sft" / "checkpoints").iterdir())


def test_bad_input_is_a_clear_error(tmp_path, tiny_model):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError):
        run_sft(make_config(tmp_path / "e", tiny_model, empty), log=lambda *_: None)
    data = write_dataset(tmp_path / "train.jsonl", n=6)
    with pytest.raises(DataError, match="larger than the dataset"):
        run_sft(make_config(tmp_path / "b", tiny_model, data, batch_size=64), log=lambda *_: None)


def test_missing_warmup_checkpoint_is_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "reft_jax.main", "--config=configs/gsm8k.py",
                          "--config.reft.warmup_checkpoint=/no/such/epoch_2"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "warmup_checkpoint" in out.stderr and "Traceback" not in out.stderr
