"""Dense maps in both kernel layouts against numpy's tensordot."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reft_jax.models.config import ModelConfig
from reft_jax.models.layers import Dense

CFG = ModelConfig(family="llama", vocab_size=16, hidden_size=6, intermediate_size=8, num_layers=1,
                  num_heads=2, num_kv_heads=1, head_dim=3, max_position_embeddings=32)


@pytest.mark.parametrize("in_shape,out_shape", [((6,), (2, 3)), ((2, 3), (6,)), ((6,), (8,))])
def test_out_major_kernel_computes_the_same_map(in_shape, out_shape):
    rng = np.random.default_rng(0)
    dense = Dense(in_shape, out_shape, ["a"] * len(in_shape), ["b"] * len(out_shape), bias=True,
                  cfg=CFG, rngs=nnx.Rngs(0))
    kernel = rng.normal(size=(*in_shape, *out_shape)).astype(np.float32)
    bias = rng.normal(size=out_shape).astype(np.float32)
    dense.kernel[...] = jnp.asarray(kernel)
    dense.bias[...] = jnp.asarray(bias)
    x = rng.normal(size=(4, 5, *in_shape)).astype(np.float32)
    expected = np.tensordot(x, kernel, len(in_shape)) + bias

    np.testing.assert_allclose(np.asarray(dense(jnp.asarray(x))), expected, rtol=1e-5, atol=1e-5)
    dense.make_out_major()
    assert dense.kernel.shape == (*out_shape, *in_shape)
    assert dense.kernel.get_metadata()["logical_axes"] == ("b",) * len(out_shape) + ("a",) * len(in_shape)
    np.testing.assert_allclose(np.asarray(dense(jnp.asarray(x))), expected, rtol=1e-5, atol=1e-5)
