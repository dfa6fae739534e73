"""Sharding across devices: runs tests/multi_device_cases.py in a child process with 4 CPU
devices (XLA fixes the device count at start-up, so this process cannot switch)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from reft_jax.errors import ReftError
from reft_jax.parallel import make_mesh
from reft_jax.train.sft import run_sft
from tests.conftest import REPO
from tests.test_train_sft_stage import final_params, make_config, write_dataset
from tests.tiny_hf import save_tiny


@pytest.mark.slow
def test_sharded_training_on_four_cpu_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         "tests/multi_device_cases.py"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "skipped" not in result.stdout.splitlines()[-1], result.stdout[-3000:]


def test_a_mesh_larger_than_the_machine_names_the_config():
    with pytest.raises(ReftError, match=r"config.mesh .* needs 2 devices; there are 1"):
        make_mesh(data=2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_like_one_device(tmp_path):
    """Two processes (as on two hosts) with two devices each, data x fsdp = 2 x 2, run the
    stage through the command-line entry; the result matches a one-device run, and only the
    first process writes."""
    model = tmp_path / "tiny"
    save_tiny(model, "llama", hidden_size=64, intermediate_size=128)
    data = write_dataset(tmp_path / "train.jsonl")
    single = make_config(tmp_path / "single", model, data)
    run_sft(single, log=lambda *_: None)

    port, env = free_port(), dict(os.environ, PYTHONPATH=str(REPO))
    children = [subprocess.Popen(
        [sys.executable, "tests/multi_process_case.py", str(i), str(port), str(tmp_path / "pod"),
         str(model), str(data)], cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [child.communicate(timeout=600)[0] for child in children]
    for child, out in zip(children, outputs):
        assert child.returncode == 0, out[-5000:]
    assert "sft done" in outputs[0] and "sft done" not in outputs[1]

    pod = make_config(tmp_path / "pod", model, data)
    ours, want = final_params(pod), final_params(single)
    assert ours.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(ours[name], want[name], atol=2e-5, err_msg=name)
    records = [json.loads(line) for line in
               (tmp_path / "pod" / "run" / "sft" / "metrics.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    single_kinds = [json.loads(line)["kind"] for line in
                    (tmp_path / "single" / "run" / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert kinds == single_kinds  # one writer: no record twice
    examples = [r["examples"] for r in records if r["kind"] != "train"]
    assert examples == [2.0, 2.0, 2.0]  # each evaluation counted both processes' shares
