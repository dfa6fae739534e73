"""The value head starts as the constant baseline V = 0 (see ValueHead's docstring for why)."""

import jax
import numpy as np
from flax import nnx

from reft_jax.models import PolicyWithValue
from reft_jax.models.config import ModelConfig
from reft_jax.models.transformer import CausalLM


def test_a_fresh_value_head_is_zero_on_every_token_and_still_learns():
    cfg = ModelConfig(family="llama", vocab_size=32, hidden_size=16, intermediate_size=32,
                      num_layers=1, num_heads=2, num_kv_heads=2, head_dim=8,
                      max_position_embeddings=32, tie_embeddings=True)
    policy = PolicyWithValue(CausalLM(cfg, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
    hidden = jax.random.normal(jax.random.key(2), (3, 5, 16))
    np.testing.assert_array_equal(np.asarray(policy.value_head(hidden)), np.zeros((3, 5)))

    def loss(head):  # regress V toward 1: the gradient must reach the kernel, not only the bias
        return ((head(hidden) - 1.0) ** 2).mean()

    grads = nnx.grad(loss)(policy.value_head)
    assert np.abs(np.asarray(grads.proj.kernel[...])).max() > 0
