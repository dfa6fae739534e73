"""Sharding across devices: runs tests/multi_device_cases.py in a child process with 4 CPU
devices (XLA fixes the device count at start-up, so this process cannot switch). Several
processes: tests/test_multi_host.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reft_jax.errors import ReftError
from reft_jax.parallel import make_mesh
from tests.conftest import REPO


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
