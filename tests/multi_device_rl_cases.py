"""One PPO iteration on 4 CPU devices, on several meshes; run by tests/test_parallel_rl.py in a
child process that sets XLA_FLAGS, with $REFT_TEST_RL_DIR holding the one-device run to match.
Not collected on its own."""

from __future__ import annotations

import os
import pathlib

import jax
import pytest

from reft_jax.errors import ReftError
from reft_jax.train.ppo import run_reft
from tests.test_parallel_rl import assert_matches_single, one_iteration_config

pytestmark = pytest.mark.skipif(jax.device_count() != 4 or "REFT_TEST_RL_DIR" not in os.environ,
                                reason="needs 4 devices (XLA_FLAGS) and the one-device run")
ROOT = pathlib.Path(os.environ.get("REFT_TEST_RL_DIR", "."))


@pytest.mark.parametrize("sizes", [(4, 1, 1), (2, 2, 1), (1, 2, 2)])
def test_one_ppo_iteration_on_a_mesh_equals_one_device(tmp_path, sizes):
    config = one_iteration_config(ROOT, tmp_path / "run")
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = sizes
    run_reft(config, log=lambda *_: None)
    assert_matches_single(config, ROOT)


def test_rollout_rows_that_do_not_split_over_the_data_axis_are_a_clear_error(tmp_path):
    config = one_iteration_config(ROOT, tmp_path / "run")
    config.reft.rollout_batch, config.reft.samples_per_question = 3, 1
    with pytest.raises(ReftError, match="config.reft.rollout_batch gives micro-batches of 3 rows"):
        run_reft(config, log=lambda *_: None)
