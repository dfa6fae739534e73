"""ModelConfig: every architectural difference between the supported families as a field.

One decoder covers Llama, Mistral, Qwen2 and OPT; the families differ only in the values here
(norm kind, MLP kind, position kind, biases), never in code paths chosen by class name.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp

from reft_jax.errors import ReftError

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def resolve_dtype(dtype: Any) -> jnp.dtype:
    """Accept 'float32' / 'bfloat16' / a jnp dtype; reject anything else by name."""
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ReftError(f"unknown dtype {dtype!r}; supported: {', '.join(DTYPES)}")
        return jnp.dtype(DTYPES[dtype])
    return jnp.dtype(dtype)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and flavour of a decoder-only transformer."""

    family: str  # the Hugging Face model_type this config reads from and writes to
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int
    norm: str = "rms"  # "rms" (RMSNorm) or "layer" (LayerNorm with bias)
    norm_eps: float = 1e-5
    mlp: str = "gated"  # "gated" (SwiGLU-style: act(gate) * up) or "plain" (act(up))
    activation: str = "silu"  # silu, relu, gelu, gelu_new
    position: str = "rope"  # "rope" or "learned"
    position_offset: int = 0  # learned positions: OPT stores 2 unused rows first
    rope_theta: float = 10000.0
    rope_scaling: Any = None  # {"rope_type": "llama3" | "linear", ...}, kept as sorted pairs
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    tie_embeddings: bool = False
    sliding_window: int | None = None
    param_dtype: str = "float32"
    dtype: str = "float32"  # compute dtype; softmax and logits are always float32
    remat: bool = False  # recompute each layer in the backward pass to save memory
    remat_policy: str = "full"  # with remat: "full" keeps only each layer's input, "dots" also
    # its weight products (more memory, less recomputed); see REMAT_POLICIES in transformer.py
    extra: Any = ()  # HF fields we keep (special token ids), as sorted (key, value) pairs

    def __post_init__(self):
        # Mappings are stored as sorted pairs so the config stays hashable (jit static data).
        for name in ("rope_scaling", "extra"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, tuple(sorted(value.items())))
        checks = {
            "norm": (self.norm, ("rms", "layer")),
            "mlp": (self.mlp, ("gated", "plain")),
            "activation": (self.activation, ("silu", "relu", "gelu", "gelu_new")),
            "position": (self.position, ("rope", "learned")),
            "remat_policy": (self.remat_policy, ("full", "dots")),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ReftError(f"model.{name}={value!r} is not supported; use one of {allowed}")
        if self.num_heads % self.num_kv_heads:
            raise ReftError(
                f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}"
            )
        resolve_dtype(self.param_dtype)
        resolve_dtype(self.dtype)

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    @property
    def num_params(self) -> int:
        """Parameter count, for FLOP estimates and logs."""
        e, i, h, k, d = (self.hidden_size, self.intermediate_size, self.num_heads,
                         self.num_kv_heads, self.head_dim)
        attn = e * d * (2 * h + 2 * k) + (d * (h + 2 * k) if self.qkv_bias else 0)
        attn += e if self.out_bias else 0
        mlp = e * i * (3 if self.mlp == "gated" else 2)
        mlp += (i * (2 if self.mlp == "gated" else 1) + e) if self.mlp_bias else 0
        norms = 2 * e * (2 if self.norm == "layer" else 1)
        per_layer = attn + mlp + norms
        embed = self.vocab_size * e * (1 if self.tie_embeddings else 2)
        if self.position == "learned":
            embed += (self.max_position_embeddings + self.position_offset) * e
        return self.num_layers * per_layer + embed + e * (2 if self.norm == "layer" else 1)
