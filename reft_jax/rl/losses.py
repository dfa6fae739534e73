"""The clipped PPO policy and value losses, averaged the way the reference code averages them.

Each term is a mean over one sequence's response tokens, then a mean over sequences: a short
response weighs as much as a long one (per-token gradients scale with 1 / that row's length).
Inputs off the mask are selected away before any arithmetic, so padding (even inf) reaches
neither the loss nor its gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reft_jax.errors import ReftError
from reft_jax.rl.advantages import masked_mean


def ppo_row_losses(logprobs, old_logprobs, values, old_values, advantages, returns, mask,
                   clip_ratio, clip_value) -> dict[str, jax.Array]:
    """Per-row (rows,) PPO terms, each a masked mean over that row's response tokens.

    pg: max(-A r, -A clip(r, 1 - clip_ratio, 1 + clip_ratio)) with r = exp(logp - logp_old);
    vf: 0.5 max((V - R)^2, (clip(V, V_old +- clip_value) - R)^2), the value moving at most
        clip_value from the value the advantages were computed with;
    clipfrac / vf_clipfrac: share of tokens where the clipped term won strictly;
    approx_kl: 0.5 (logp - logp_old)^2, a cheap KL(old || new) monitor.
    `values` (and `old_values`, `returns`) may be None for critic-free runs: vf terms are 0.
    """
    on = jnp.asarray(mask) > 0

    def sel(x):
        return jnp.where(on, jnp.asarray(x, jnp.float32), 0.0)

    def row_mean(x):
        return masked_mean(x, on, axis=-1)

    log_ratio = sel(logprobs) - sel(old_logprobs)
    ratio = jnp.exp(log_ratio)
    adv = sel(advantages)
    pg_plain = -adv * ratio
    pg_clipped = -adv * jnp.clip(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)
    out = {
        "pg": row_mean(jnp.maximum(pg_plain, pg_clipped)),
        "clipfrac": row_mean((pg_clipped > pg_plain).astype(jnp.float32)),
        "approx_kl": row_mean(0.5 * log_ratio**2),
    }
    if values is None:
        zeros = jnp.zeros(on.shape[0], jnp.float32)
        return out | {"vf": zeros, "vf_clipfrac": zeros}
    if old_values is None or returns is None:
        raise ReftError("the value loss needs old_values and returns alongside values")
    v, v_old, ret = sel(values), sel(old_values), sel(returns)
    vf_plain = (v - ret) ** 2
    vf_clipped = (jnp.clip(v, v_old - clip_value, v_old + clip_value) - ret) ** 2
    return out | {
        "vf": row_mean(0.5 * jnp.maximum(vf_plain, vf_clipped)),
        "vf_clipfrac": row_mean((vf_clipped > vf_plain).astype(jnp.float32)),
    }


def ppo_loss(logprobs, old_logprobs, values, old_values, advantages, returns, mask,
             clip_ratio, clip_value, vf_coef) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(pg + vf_coef * vf, metrics): the per-row terms averaged over sequences.

    Rows with no response token (padding rows, e.g. added to fill a device shard) are left out of
    the average, so padding a batch does not change its loss. Metrics are scalars: loss, pg_loss,
    vf_loss, clipfrac, vf_clipfrac, approx_kl.
    """
    rows = ppo_row_losses(logprobs, old_logprobs, values, old_values, advantages, returns, mask,
                          clip_ratio, clip_value)
    real_rows = jnp.any(jnp.asarray(mask) > 0, axis=-1)
    m = {k: masked_mean(v, real_rows) for k, v in rows.items()}
    loss = m["pg"] + vf_coef * m["vf"]
    return loss, {"loss": loss, "pg_loss": m["pg"], "vf_loss": m["vf"], "clipfrac": m["clipfrac"],
                  "vf_clipfrac": m["vf_clipfrac"], "approx_kl": m["approx_kl"]}
