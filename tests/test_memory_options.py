"""The memory options a 7B run needs, beyond what the planner shows: each changes where and in
what dtype things live, never the training math."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reft_jax.config import default_config
from reft_jax.errors import ReftError
from reft_jax.models import ModelConfig, load_pretrained
from reft_jax.models.transformer import apply_remat
from reft_jax.train.rollout_sampling import rollout_sampler, sampling_weights
from reft_jax.train.sft_step import make_sft_step
from reft_jax.train.state import create_train_state
from tests.test_train_step import constant_adamw, random_rows, sft_batch, stack
from tests.tiny_hf import save_tiny


def test_the_rollout_sampler_keeps_its_kv_cache_in_the_configured_dtype():
    config = default_config()
    sampler, settings = rollout_sampler(config, eos_id=2, pad_id=0)
    assert sampler.cache_dtype is None  # the compute dtype
    assert settings.max_new_tokens == config.reft.max_length - 1
    config.reft.kv_cache_dtype = "bfloat16"
    sampler, _ = rollout_sampler(config, eos_id=2, pad_id=0)
    assert sampler.cache_dtype == jnp.bfloat16


def test_sampler_weights_are_a_cast_copy_of_the_floating_point_arrays():
    params = {"w": jnp.ones((2, 3), jnp.float32), "ids": jnp.arange(3, dtype=jnp.int32)}
    assert sampling_weights(params, "") is params
    copy = sampling_weights(params, "bfloat16")
    assert copy["w"].dtype == jnp.bfloat16 and copy["ids"].dtype == jnp.int32
    assert params["w"].dtype == jnp.float32  # the train state's own arrays are untouched
    np.testing.assert_array_equal(np.asarray(copy["w"], np.float32), np.ones((2, 3)))


def test_a_remat_policy_changes_memory_not_the_step(tmp_path):
    """The same SFT step, loss and parameters with no remat, full remat and `dots` remat."""
    save_tiny(tmp_path, "llama", seed=3)
    batch = stack(sft_batch(random_rows(0, [(3, 4), (2, 5)]), 10),
                  sft_batch(random_rows(1, [(4, 3), (1, 6)]), 10))
    results = []
    for remat, policy in [(False, "full"), (True, "full"), (True, "dots")]:
        model, _ = load_pretrained(tmp_path)
        settings = default_config().model
        settings.remat, settings.remat_policy = remat, policy
        apply_remat(model, settings)
        assert (model.config.remat, model.trunk.config.remat_policy) == (remat, policy if remat
                                                                         else "full")
        optimizer = constant_adamw(1e-3)
        graphdef, state = create_train_state(model, optimizer)
        state, metrics = make_sft_step(graphdef, optimizer, grad_accum=2)(state, batch)
        results.append((float(metrics["loss"]), jax.tree.map(np.asarray, state.params)))
    (loss, params), *others = results
    for other_loss, other_params in others:
        assert other_loss == pytest.approx(loss, rel=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                     params, other_params)


def test_an_unknown_remat_policy_is_refused():
    with pytest.raises(ReftError, match="remat_policy='some'"):
        ModelConfig(family="llama", vocab_size=8, hidden_size=4, intermediate_size=8,
                    num_layers=1, num_heads=1, num_kv_heads=1, head_dim=4,
                    max_position_embeddings=8, remat_policy="some")
