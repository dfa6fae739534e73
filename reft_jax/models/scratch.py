"""A small Llama-style model with random weights, for training from scratch (the CPU quickstart).

The same decoder as every pretrained family (RMSNorm, SwiGLU MLP, rotary positions), only
small, with tied embeddings; saved with `save_pretrained` it is an ordinary Hugging Face folder
that every later stage (and transformers) loads like any checkpoint.
"""

from __future__ import annotations

from typing import Any

from flax import nnx

from reft_jax.models.config import ModelConfig
from reft_jax.models.transformer import CausalLM


def scratch_model(tokenizer: Any, *, hidden_size: int, num_layers: int, num_heads: int,
                  intermediate_size: int, max_positions: int, seed: int) -> CausalLM:
    """A randomly initialised Llama-style CausalLM over `tokenizer`'s vocabulary."""
    cfg = ModelConfig(
        family="llama", vocab_size=len(tokenizer), hidden_size=hidden_size,
        intermediate_size=intermediate_size, num_layers=num_layers, num_heads=num_heads,
        num_kv_heads=num_heads, head_dim=hidden_size // num_heads,
        max_position_embeddings=max_positions, tie_embeddings=True,
        extra={"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id})
    return CausalLM(cfg, rngs=nnx.Rngs(seed))
