"""The PPO stage across devices and processes: one iteration on 4 CPU devices (several meshes, in
a child process, since XLA fixes the device count at start-up) and on two processes of two
devices each must match one device."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.conftest import REPO
from tests.multi_process import run_processes
from tests.test_train_reft import write_splits
from tests.test_train_sft_stage import make_config
from tests.tiny_hf import save_tiny

pytestmark = pytest.mark.slow


def one_iteration_config(root: pathlib.Path, workdir: pathlib.Path):
    """One PPO iteration (8 training questions x 2 samples) from root's warm-up checkpoint."""
    config = make_config(workdir.parent, root / "tiny", root / "data")
    config.workdir = str(workdir)
    config.reft.warmup_checkpoint = str(root / "warm" / "sft" / "epoch_1")
    config.reft.epochs = 1
    config.reft.rollout_batch = 8
    config.reft.samples_per_question = 2
    config.reft.max_length = 14
    config.reft.max_prompt_length = 13  # below max_length, as the command line checks
    # Adam's first step is about lr * sign(gradient): it turns float noise in near-zero gradient
    # entries into differences of up to lr, so a small lr keeps the comparison meaningful
    config.reft.learning_rate = 1e-5
    config.eval.max_new_tokens = 4
    return config


def final_params(config):
    return load_file(pathlib.Path(config.workdir) / "reft" / "last" / "model.safetensors")


def iteration_metrics(config) -> dict:
    lines = (pathlib.Path(config.workdir) / "reft" / "metrics.jsonl").read_text().splitlines()
    record = next(r for r in map(json.loads, lines) if r["kind"] == "train")
    return {k: record[k] for k in ("score", "kl", "loss", "pg_loss", "vf_loss", "grad_norm",
                                   "explained_variance", "response_length")}


def assert_matches_single(config, root: pathlib.Path) -> None:
    """The iteration's metrics (the same samples, losses and gradient norm) and the parameters
    after it are the one-device run's."""
    single = one_iteration_config(root, root / "single")
    ours, want = iteration_metrics(config), iteration_metrics(single)
    for key in want:
        np.testing.assert_allclose(ours[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
    ours, want = final_params(config), final_params(single)
    assert ours.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(ours[name], want[name], atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """A warm-up checkpoint and the one-device PPO iteration every layout must reproduce."""
    from reft_jax.train.ppo import run_reft
    from reft_jax.train.sft import run_sft

    root = tmp_path_factory.mktemp("rl_parallel")
    save_tiny(root / "tiny", "llama", hidden_size=64, intermediate_size=128)
    write_splits(root / "data", n=10)  # 8 for training, 2 for validation
    warm = make_config(root, root / "tiny", root / "data", epochs=1, batch_size=4)
    warm.workdir = str(root / "warm")
    run_sft(warm, log=lambda *_: None)
    run_reft(one_iteration_config(root, root / "single"), log=lambda *_: None)
    return root


def test_one_iteration_on_four_cpu_devices(single):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               REFT_TEST_RL_DIR=str(single))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         "tests/multi_device_rl_cases.py"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=1200)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "skipped" not in result.stdout.splitlines()[-1], result.stdout[-3000:]


def test_one_iteration_on_two_processes(single, tmp_path):
    """Two processes of two CPU devices each, parameters split across them (fsdp 2 x tensor 2),
    through the command-line entry."""
    outputs = run_processes("reft", single, tmp_path / "pod")
    assert "reft done" in outputs[0] and "reft done" not in outputs[1]
    assert_matches_single(one_iteration_config(single, tmp_path / "pod"), single)
