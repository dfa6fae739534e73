"""Small heads on the shared trunk: ReFT's value head and the reranker's classifier.

Both read the last hidden state (after the final norm), as in the reference code, and are
separate modules so one optimizer can train trunk and head together while the head's
parameters stay easy to find, save or drop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from reft_jax.models.config import ModelConfig
from reft_jax.models.layers import Dense
from reft_jax.models.transformer import CausalLM


class ValueHead(nnx.Module):
    """V(s_t) = w · h_t + b: one scalar per token, starting at V = 0 everywhere.

    The paper does not say how the head starts (the reference code keeps torch's random
    Linear). A random head gives each token a different value, and GAE turns those differences
    into per-token advantages that are pure noise: on the quickstart's 136k model they moved the
    policy 2 nats per sequence from the warm-up in 5 iterations, and the first RL epoch cost
    10, 22 and 14.5 points of validation accuracy (seeds 42, 1, 2); from zero, 0.1-0.8 nats,
    and -3, 12.5 and 6 points.
    """

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.proj = Dense((cfg.hidden_size,), (1,), ("embed",), (None,), bias=True, cfg=cfg, rngs=rngs)
        self.proj.kernel[...] = jnp.zeros_like(self.proj.kernel[...])  # the bias starts at 0 too

    def __call__(self, hidden: jax.Array) -> jax.Array:
        return self.proj(hidden)[..., 0].astype(jnp.float32)


class ClassifierHead(nnx.Module):
    """Per-token class logits; the reranker reads them at each sequence's last real token."""

    def __init__(self, cfg: ModelConfig, num_classes: int = 2, *, rngs: nnx.Rngs):
        self.proj = Dense((cfg.hidden_size,), (num_classes,), ("embed",), (None,), bias=True,
                          cfg=cfg, rngs=rngs)

    def __call__(self, hidden: jax.Array) -> jax.Array:
        return self.proj(hidden).astype(jnp.float32)


class PolicyWithValue(nnx.Module):
    """ReFT's actor-critic: a causal LM and a value head on its trunk's last hidden state.

    Trunk and head train together under one optimizer; exporting the policy writes `lm` alone.
    `reft_jax.train.ppo_step.response_terms` reads both from one trunk pass.
    """

    def __init__(self, lm: CausalLM, *, rngs: nnx.Rngs):
        self.lm = lm
        self.value_head = ValueHead(lm.config, rngs=rngs)
