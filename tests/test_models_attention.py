"""The attention kernels against a plain numpy softmax attention (grouped-query, masked)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from reft_jax.models.layers import causal_chunk_attention, chunk_attention, decode_attention


def numpy_attention(q, k, v, mask):
    """q (B,T,H,D), k/v (B,S,K,D), mask (B,T,S): each query head reads KV head h // (H/K)."""
    heads, kv_heads = q.shape[2], k.shape[2]
    k = np.repeat(k, heads // kv_heads, axis=2)
    v = np.repeat(v, heads // kv_heads, axis=2)
    scores = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(q.shape[-1])
    scores = np.where(mask[:, None], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bhts,bshd->bthd", weights, v)


def heads_major(a):
    """(B,S,K,D) numpy keys or values in the kernels' (B,K,S,D) layout."""
    return jnp.asarray(a.transpose(0, 2, 1, 3))


def test_chunk_and_decode_attention_match_numpy():
    rng = np.random.default_rng(0)
    b, t, s, h, kv, d = 3, 5, 7, 6, 2, 8
    q = rng.normal(size=(b, t, h, d)).astype(np.float32)
    k = rng.normal(size=(b, s, kv, d)).astype(np.float32)
    v = rng.normal(size=(b, s, kv, d)).astype(np.float32)
    mask = rng.random((b, t, s)) < 0.6
    mask[:, :, 0] = True  # every query sees at least one key
    expected = numpy_attention(q, k, v, mask)
    got = chunk_attention(jnp.asarray(q), heads_major(k), heads_major(v), jnp.asarray(mask))
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5)
    # One query over the cache: the last query row of the same problem.
    got = decode_attention(jnp.asarray(q[:, -1:]), heads_major(k), heads_major(v),
                           jnp.asarray(mask[:, -1:]))
    np.testing.assert_allclose(np.asarray(got), expected[:, -1:], atol=1e-5)


def test_causal_blocks_match_numpy_on_causal_masks():
    rng = np.random.default_rng(1)
    b, h, kv, d = 2, 4, 2, 8
    for t in (1, 3, 10):  # fewer tokens than blocks, uneven blocks, even ones
        q = rng.normal(size=(b, t, h, d)).astype(np.float32)
        k = rng.normal(size=(b, t, kv, d)).astype(np.float32)
        v = rng.normal(size=(b, t, kv, d)).astype(np.float32)
        valid = rng.random((b, t)) < 0.7
        valid[:, 0] = True
        mask = np.tril(np.ones((t, t), bool))[None] & valid[:, None, :]
        mask[:, np.arange(t), np.arange(t)] = True  # each query sees itself, as padding does
        got = causal_chunk_attention(jnp.asarray(q), heads_major(k), heads_major(v), jnp.asarray(mask))
        np.testing.assert_allclose(np.asarray(got), numpy_attention(q, k, v, mask), atol=1e-5)
