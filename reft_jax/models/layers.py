"""The building blocks of the decoder: dense maps, norms, rotary embeddings, attention, MLP.

Every parameter carries `logical_axes` metadata (embed, heads, kv_heads, head_dim, mlp, vocab),
so sharding is a rule table in `reft_jax.parallel`, not a change to this file.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from reft_jax.kernels import decode_attention_kernel, decode_attention_supported
from reft_jax.models.config import ModelConfig, resolve_dtype

INIT_STD = 0.02  # transformers' initializer_range default


def param(rngs: nnx.Rngs | None, init, shape: Sequence[int], axes: Sequence[str], dtype) -> nnx.Param:
    """A parameter with its logical axis names attached."""
    key = rngs.params() if rngs is not None else jax.random.key(0)
    return nnx.Param(init(key, tuple(shape), dtype), logical_axes=tuple(axes))


def normal(key, shape, dtype):
    return INIT_STD * jax.random.normal(key, shape, dtype)


def zeros(key, shape, dtype):
    return jnp.zeros(shape, dtype)


def ones(key, shape, dtype):
    return jnp.ones(shape, dtype)


class Dense(nnx.Module):
    """y = x · W (+ b), contracting the trailing `in_shape` axes of x against W's leading ones."""

    def __init__(self, in_shape, out_shape, in_axes, out_axes, *, bias: bool, cfg: ModelConfig,
                 rngs: nnx.Rngs):
        pdt = resolve_dtype(cfg.param_dtype)
        self.kernel = param(rngs, normal, (*in_shape, *out_shape), (*in_axes, *out_axes), pdt)
        self.bias = param(rngs, zeros, out_shape, out_axes, pdt) if bias else None
        self.contract = len(in_shape)
        self.dtype = resolve_dtype(cfg.dtype)
        self.out_major = False

    def make_out_major(self) -> None:
        """Store the kernel as (*out_shape, *in_shape) and compute y^T = W^T x^T, then transpose.

        For decoding many rows on a CPU: with the weight as the left operand XLA's CPU matmul
        packs the small activation instead of the weight on every call (see the sampler).
        """
        if self.out_major:
            return
        kernel, n_in = self.kernel[...], self.contract
        order = (*range(n_in, kernel.ndim), *range(n_in))
        axes = self.kernel.get_metadata()["logical_axes"]
        self.kernel = nnx.Param(kernel.transpose(order), logical_axes=tuple(axes[i] for i in order))
        self.out_major = True

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel, x = self.kernel[...].astype(self.dtype), x.astype(self.dtype)
        if self.out_major:
            n_out = kernel.ndim - self.contract
            contracted = (tuple(range(n_out, kernel.ndim)), tuple(range(x.ndim - self.contract, x.ndim)))
            y = jnp.tensordot(kernel, x, contracted)  # (*out, *rows)
            y = jnp.moveaxis(y, tuple(range(n_out)), tuple(range(y.ndim - n_out, y.ndim)))
        else:
            # One 2-D product (rows, in) x (in, out), not a tensordot over (B, T, ...) axes: XLA's
            # CPU backward of the batched form copied activations into transposed layouts for
            # the weight gradient. On 2 Xeon cores SmolLM2's SFT step at 8 x 256 went from 13.2
            # to 9.0 s and the quickstart model's step at 32 x 96 from 93 to 43 ms.
            rows, n_in = x.shape[:x.ndim - self.contract], math.prod(kernel.shape[:self.contract])
            out = kernel.shape[self.contract:]
            y = jnp.dot(x.reshape(-1, n_in), kernel.reshape(n_in, -1)).reshape(*rows, *out)
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        return y


class Norm(nnx.Module):
    """RMSNorm (Llama family) or LayerNorm with bias (OPT), computed in float32."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        pdt = resolve_dtype(cfg.param_dtype)
        self.scale = param(rngs, ones, (cfg.hidden_size,), ("embed",), pdt)
        self.bias = param(rngs, zeros, (cfg.hidden_size,), ("embed",), pdt) if cfg.norm == "layer" else None
        self.eps = cfg.norm_eps
        self.dtype = resolve_dtype(cfg.dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        if self.bias is None:
            y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
            return (self.scale[...].astype(jnp.float32) * y).astype(self.dtype)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        y = y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
        return y.astype(self.dtype)


def rope_frequencies(cfg: ModelConfig) -> jnp.ndarray:
    """Inverse frequencies of rotary embeddings, with Llama-3 or linear scaling applied."""
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))
    scaling = dict(cfg.rope_scaling or {})
    kind = scaling.get("rope_type")
    if kind == "linear":
        inv_freq = inv_freq / scaling["factor"]
    elif kind == "llama3":
        factor = scaling["factor"]
        low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
        old_len = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        scaled = jnp.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
        inv_freq = jnp.where(medium, smoothed, scaled)
    return inv_freq


def rope_tables(positions: jax.Array, cfg: ModelConfig) -> tuple[jax.Array, jax.Array]:
    """cos and sin of shape (batch, length, head_dim) for integer positions (batch, length)."""
    angles = positions.astype(jnp.float32)[..., None] * rope_frequencies(cfg)
    angles = jnp.concatenate([angles, angles], axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate (batch, length, heads, head_dim) by the half-split convention of transformers."""
    x32 = x.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    out = x32 * cos[:, :, None, :] + rotated * sin[:, :, None, :]
    return out.astype(x.dtype)


class Attention(nnx.Module):
    """Grouped-query self-attention that writes its keys and values into an optional cache."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        e, h, k, d = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q = Dense((e,), (h, d), ("embed",), ("heads", "head_dim"), bias=cfg.qkv_bias, cfg=cfg, rngs=rngs)
        self.k = Dense((e,), (k, d), ("embed",), ("kv_heads", "head_dim"), bias=cfg.qkv_bias, cfg=cfg, rngs=rngs)
        self.v = Dense((e,), (k, d), ("embed",), ("kv_heads", "head_dim"), bias=cfg.qkv_bias, cfg=cfg, rngs=rngs)
        self.o = Dense((h, d), (e,), ("heads", "head_dim"), ("embed",), bias=cfg.out_bias, cfg=cfg, rngs=rngs)
        self.use_rope = cfg.position == "rope"

    def __call__(self, x, rope, mask, cache=None, cache_index=None):
        """x (B,T,E); mask (B,T,S) bool.

        cache: None (keys are this chunk, S=T) or this layer's (k, v) buffers, each
        (B,K,S,D) so that each head's slots are contiguous for the decode read. The chunk is
        written in place at slot `cache_index` and the updated buffers are returned. Without a
        cache, this chunk's keys and values are returned in that layout (unused ones cost
        nothing under jit), for a prefill that lays them into a cache of its own.
        """
        q, k, v = self.q(x), self.k(x), self.v(x)
        if self.use_rope:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        heads_major = lambda a: a.transpose(0, 2, 1, 3)  # (B,T,K,D) <-> (B,K,T,D)
        new_cache = (heads_major(k), heads_major(v))
        if cache is not None:
            start = (0, 0, cache_index, 0)
            new_cache = tuple(jax.lax.dynamic_update_slice(buf, chunk.astype(buf.dtype), start)
                              for buf, chunk in zip(cache, new_cache))
        if cache is not None and q.shape[1] == 1:  # reads the cache in its own dtype
            return self.o(decode_attention(q, *new_cache, mask)), new_cache
        ck, cv = (a.astype(q.dtype) for a in new_cache)  # (B,K,S,D)
        if on_cpu():
            attend = chunk_attention if cache is not None else causal_chunk_attention
            return self.o(attend(q, ck, cv, mask)), new_cache
        out = jax.nn.dot_product_attention(q, heads_major(ck), heads_major(cv), mask=mask[:, None])
        return self.o(out), new_cache


def on_cpu() -> bool:
    """Where the fastest formulation differs by backend, the callers say what each measured."""
    return jax.default_backend() == "cpu"


def chunk_attention(q, k, v, mask):
    """Attention of a chunk of queries (B,T,H,D) over keys and values (B,K,S,D), grouped by
    KV head; mask (B,T,S). As in decode_attention, the softmax is normalised after the value
    product: on a 2-core CPU a packed prefill layer ran in 40 ms against 52 ms for
    `jax.nn.dot_product_attention`; moving the heads ahead of the tokens first saved another
    0.1 s of a 2.9 s prefill. Used on CPUs only: on an H200 the backward pass of this kind of
    layout spent 40% of a bf16 SFT step in transposes, where XLA's own attention did not.
    """
    b, t, h, d = q.shape
    kv_heads = k.shape[1]
    qg = q.reshape(b, t, kv_heads, h // kv_heads, d) * jnp.asarray(d ** -0.5, q.dtype)
    qg = qg.transpose(0, 2, 3, 1, 4)  # (B,K,G,T,D)
    scores = jnp.einsum("bkgtd,bksd->bkgts", qg, k, preferred_element_type=jnp.float32)
    scores = jnp.where(mask[:, None, None], scores, -1e30)
    weights = jnp.exp(scores - jax.lax.stop_gradient(jnp.max(scores, axis=-1, keepdims=True)))
    out = jnp.einsum("bkgts,bksd->bkgtd", weights.astype(v.dtype), v,
                     preferred_element_type=jnp.float32)
    out = out / jnp.sum(weights, axis=-1)[..., None]
    return out.transpose(0, 3, 1, 2, 4).reshape(b, t, h, d).astype(q.dtype)


def causal_chunk_attention(q, k, v, mask, blocks: int = 4):
    """chunk_attention for a chunk that is its own keys (no cache): query t sees no key after
    t, so the i-th of `blocks` query blocks only reads keys up to its end, 5/8 of the work at 4
    blocks. On 2 cores an SFT step of 8 x 256 took 7.5 s against 8.3 (8 blocks: 7.8, 16: 8.2),
    a packed GSM8K prefill of 30 rows x 160 0.1-0.25 s less of 3.1 s.
    """
    t = q.shape[1]
    bounds = [t * i // blocks for i in range(blocks + 1)]
    parts = [chunk_attention(q[:, a:b], k[:, :, :b], v[:, :, :b], mask[:, a:b, :b])
             for a, b in zip(bounds, bounds[1:]) if b > a]
    return jnp.concatenate(parts, axis=1)


def decode_attention(q, k, v, mask):
    """Attention of one query per row over a (B,K,S,D) cache, grouped by KV head.

    On one CPU device with a float32 cache this is the hand-written kernel of
    `reft_jax.kernels`, which reads only each row's span of valid slots: 13 against 29 ms per
    step for SmolLM2 at batch 64 on 2 cores. Elsewhere, the mask is added as a bias and the
    softmax normalised after the value product, which on that CPU ran 2x faster than masking
    the scores with `where` and normalising the probabilities first.
    """
    b, _, h, d = q.shape
    kv_heads = k.shape[1]
    qg = q.reshape(b, kv_heads, h // kv_heads, d).astype(jnp.float32) * d ** -0.5
    if decode_attention_supported(k):
        out = decode_attention_kernel(qg, k, v, mask[:, 0])
        return out.reshape(b, 1, h, d).astype(q.dtype)
    bias = jnp.where(mask[:, 0], 0.0, -1e30).astype(jnp.float32)  # (B,S)
    scores = jnp.einsum("bkgd,bksd->bkgs", qg, k.astype(jnp.float32)) + bias[:, None, None, :]
    weights = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))
    out = jnp.einsum("bkgs,bksd->bkgd", weights, v.astype(jnp.float32))
    out = out / jnp.sum(weights, axis=-1)[..., None]
    return out.reshape(b, 1, h, d).astype(q.dtype)


ACTIVATIONS = {
    "silu": jax.nn.silu,
    "relu": jax.nn.relu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
}


class MLP(nnx.Module):
    """SwiGLU-style gated MLP (Llama, Qwen2, Mistral) or a plain two-layer MLP (OPT)."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        e, i, b = cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias
        self.gate = (Dense((e,), (i,), ("embed",), ("mlp",), bias=b, cfg=cfg, rngs=rngs)
                     if cfg.mlp == "gated" else None)
        self.up = Dense((e,), (i,), ("embed",), ("mlp",), bias=b, cfg=cfg, rngs=rngs)
        self.down = Dense((i,), (e,), ("mlp",), ("embed",), bias=b, cfg=cfg, rngs=rngs)
        self.act = ACTIVATIONS[cfg.activation]

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.gate is None:
            return self.down(self.act(self.up(x)))
        return self.down(self.act(self.gate(x)) * self.up(x))
