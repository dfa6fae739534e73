"""One PPO iteration on 4 CPU devices, on several meshes; run by tests/test_parallel_rl.py in a
child process that sets XLA_FLAGS, with $REFT_TEST_RL_DIR holding the one-device run to match.
Not collected on its own."""

from __future__ import annotations

import os
import pathlib

import jax
import numpy as np
import pytest

from reft_jax.errors import ReftError
from reft_jax.train.ppo import run_reft
from tests.test_parallel_rl import final_params, iteration_metrics, one_iteration_config

pytestmark = pytest.mark.skipif(jax.device_count() != 4 or "REFT_TEST_RL_DIR" not in os.environ,
                                reason="needs 4 devices (XLA_FLAGS) and the one-device run")
ROOT = pathlib.Path(os.environ.get("REFT_TEST_RL_DIR", "."))


@pytest.mark.parametrize("sizes", [(4, 1, 1), (2, 2, 1), (1, 2, 2)])
def test_one_ppo_iteration_on_a_mesh_equals_one_device(tmp_path, sizes):
    config = one_iteration_config(ROOT, tmp_path / "run")
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = sizes
    run_reft(config, log=lambda *_: None)
    single = one_iteration_config(ROOT, ROOT / "single")
    ours, want = iteration_metrics(config), iteration_metrics(single)
    for key in want:  # the same samples, losses and gradient norm
        np.testing.assert_allclose(ours[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
    ours, want = final_params(config), final_params(single)
    assert ours.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(ours[name], want[name], atol=1e-5, err_msg=name)


def test_rollout_rows_that_do_not_split_over_the_data_axis_are_a_clear_error(tmp_path):
    config = one_iteration_config(ROOT, tmp_path / "run")
    config.reft.rollout_batch, config.reft.samples_per_question = 3, 1
    with pytest.raises(ReftError, match="config.reft.rollout_batch gives micro-batches of 3 rows"):
        run_reft(config, log=lambda *_: None)
