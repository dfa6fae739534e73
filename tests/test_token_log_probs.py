"""Chunked token log-probs against a float64 numpy log-softmax and its analytic gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reft_jax.models.token_log_probs import token_log_probs


def numpy_oracle(h, head_ve, targets, g):
    """(log-probs, d sum(g * logp) / dh, d / d head (V, E)) in float64."""
    h = h.astype(np.float64).reshape(-1, h.shape[-1])
    w = head_ve.astype(np.float64)
    t, g = targets.reshape(-1), g.reshape(-1).astype(np.float64)
    logits = h @ w.T
    logits -= logits.max(-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    onehot = np.eye(w.shape[0])[t]
    d_logits = g[:, None] * (onehot - np.exp(log_p))
    return log_p[np.arange(len(t)), t], d_logits @ w, d_logits.T @ h


def problem(seed=0, lead=(3, 5), embed=16, vocab=37):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(*lead, embed)).astype(np.float32)
    head = (0.3 * rng.normal(size=(vocab, embed))).astype(np.float32)
    targets = rng.integers(0, vocab, lead).astype(np.int32)
    g = rng.normal(size=lead).astype(np.float32)
    return h, head, targets, g


@pytest.mark.parametrize("vocab_axis", [0, 1])
@pytest.mark.parametrize("chunk", [1, 4, 15, 100])  # 15 tokens: uneven chunks, one, more than all
def test_values_and_gradients_match_numpy(vocab_axis, chunk):
    h, head, targets, g = problem()
    want_lp, want_dh, want_dw = numpy_oracle(h, head, targets, g)
    stored = head if vocab_axis == 0 else head.T

    def objective(h, w):
        lp = token_log_probs(h, w, jnp.asarray(targets), vocab_axis=vocab_axis, chunk=chunk)
        return jnp.sum(jnp.asarray(g) * lp), lp

    (_, lp), (dh, dw) = jax.value_and_grad(objective, (0, 1), has_aux=True)(
        jnp.asarray(h), jnp.asarray(stored))
    assert lp.shape == targets.shape and lp.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(lp).reshape(-1), want_lp, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(dh).reshape(-1, h.shape[-1]), want_dh, atol=1e-5)
    dw = np.asarray(dw) if vocab_axis == 0 else np.asarray(dw).T
    np.testing.assert_allclose(dw, want_dw, atol=1e-5)


def test_bfloat16_compute_keeps_float32_log_probs_and_bfloat16_gradients():
    h, head, targets, g = problem(seed=1, lead=(4, 6))
    want_lp, want_dh, want_dw = numpy_oracle(h, head, targets, g)
    hb = jnp.asarray(h, jnp.bfloat16)

    def objective(h, w):
        lp = token_log_probs(h, w, jnp.asarray(targets), vocab_axis=0, chunk=8)
        return jnp.sum(jnp.asarray(g) * lp), lp

    # head in float32 (the parameters), hidden in bfloat16 (the compute dtype)
    (_, lp), (dh, dw) = jax.value_and_grad(objective, (0, 1), has_aux=True)(hb, jnp.asarray(head))
    assert lp.dtype == jnp.float32 and dh.dtype == jnp.bfloat16 and dw.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(lp).reshape(-1), want_lp, atol=0.05)
    np.testing.assert_allclose(np.asarray(dh, np.float32).reshape(-1, 16), want_dh, atol=0.05)
    np.testing.assert_allclose(np.asarray(dw), want_dw, atol=0.05)


def test_bad_arguments_are_named():
    h, head, targets, _ = problem()
    with pytest.raises(ValueError, match="vocab_axis"):
        token_log_probs(h, head, targets, vocab_axis=2)
    with pytest.raises(ValueError, match="disagree"):
        token_log_probs(h, head, targets[:, :4], vocab_axis=0)
