"""Per-token rewards, GAE, whitening and critic-free advantages on response-aligned arrays.

Every array is (rows, T): column j is a row's j-th response token and `mask` is 1 on response
tokens (EOS included) and 0 after. Values off the mask are ignored (read as 0), never trusted:
padding may hold anything, even inf, and must not leak into a result or a gradient. All math is
float32 and jit-able; reductions over the whole batch (`masked_mean` with no axis, the whitening)
are global over a sharded array, so under a mesh they already span all devices, as the reference's
"whiten over all response tokens of all devices" asks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reft_jax.errors import ReftError

KL_ESTIMATORS = ("k1", "k3")
GROUP_KINDS = ("grpo", "rloo")


def _f32(x) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def _on(mask) -> jax.Array:
    """The mask as booleans: selecting with `where` (not multiplying) keeps inf/NaN padding out."""
    return jnp.asarray(mask) > 0


def kl_penalty(logprobs, ref_logprobs, estimator: str = "k1") -> jax.Array:
    """Per-token estimate of KL(policy || reference) from the sampled tokens' log-probs.

    k1 = log p - log p_ref is the reference code's (unbiased, can be negative per token);
    k3 = exp(-k1) + k1 - 1 is Schulman's low-variance, always non-negative estimator.
    """
    log_ratio = _f32(logprobs) - _f32(ref_logprobs)
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return jnp.expm1(-log_ratio) + log_ratio
    raise ReftError(f"unknown KL estimator {estimator!r}; choose one of {', '.join(KL_ESTIMATORS)}")


def last_masked_column(mask) -> jax.Array:
    """(rows, T) one-hot of each row's last masked column: the action that emitted EOS, or the
    last action of a response cut at the length limit. All zeros for an all-zero row."""
    on = _on(mask)
    t = on.shape[-1]
    last = t - 1 - jnp.argmax(on[:, ::-1], axis=-1)
    return jax.nn.one_hot(last, t, dtype=jnp.float32) * jnp.any(on, axis=-1, keepdims=True)


def kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, kl_coef,
                         estimator: str = "k1") -> jax.Array:
    """ReFT's per-token reward: -kl_coef * KL on every response token, plus the sequence's score
    on its last action (the only place the terminal reward can be credited). Zero off the mask."""
    kl = jnp.where(_on(mask), kl_penalty(logprobs, ref_logprobs, estimator), 0.0)
    return -_f32(kl_coef) * kl + _f32(scores)[:, None] * last_masked_column(mask)


def gae(rewards, values, mask, gamma, lam) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation with a reverse `lax.scan` over time.

    Rewards and values are read as 0 off the mask, so the value after a response's last token is
    0 (the episode ends there) and padding never bootstraps. delta_t = r_t + gamma V_{t+1} - V_t,
    A_t = delta_t + gamma lam A_{t+1}. Returns (advantages, returns = A + V), both from the
    un-whitened A and zero off the mask.
    """
    on = _on(mask)
    r = jnp.where(on, _f32(rewards), 0.0)
    v = jnp.where(on, _f32(values), 0.0)
    gamma, lam = _f32(gamma), _f32(lam)

    def step(carry, xs):
        next_adv, next_value = carry
        r_t, v_t = xs
        adv = r_t + gamma * next_value - v_t + gamma * lam * next_adv
        return (adv, v_t), adv

    zeros = jnp.zeros(r.shape[0], jnp.float32)
    _, adv_t = jax.lax.scan(step, (zeros, zeros), (r.T, v.T), reverse=True)
    adv = jnp.where(on, adv_t.T, 0.0)
    return adv, jnp.where(on, adv + v, 0.0)


def masked_mean(x, mask, axis=None) -> jax.Array:
    """Mean over masked entries (mask is 0/1); the count is floored at 1 so an empty row gives 0,
    not NaN, and its gradient stays finite."""
    on = _on(mask)
    total = jnp.sum(jnp.where(on, _f32(x), 0.0), axis=axis)
    return total / jnp.maximum(jnp.sum(on, axis=axis, dtype=jnp.float32), 1.0)


def masked_var(x, mask) -> jax.Array:
    """Unbiased variance over all masked entries (Bessel's n-1, floored at 1 so n <= 1 gives 0),
    as trl's `masked_var(unbiased=True)` that the reference whitens with."""
    on = _on(mask)
    centred = jnp.where(on, _f32(x) - masked_mean(x, mask), 0.0)
    n = jnp.sum(on, dtype=jnp.float32)
    return jnp.sum(centred**2) / jnp.maximum(n - 1.0, 1.0)


def masked_whiten(x, mask) -> jax.Array:
    """(x - mean) / sqrt(var + 1e-8) over masked entries, mean NOT added back (the reference
    whitens advantages once per rollout batch this way). Zero off the mask; the 1e-8 keeps a
    batch of equal values finite (it maps to zeros)."""
    on = _on(mask)
    out = (_f32(x) - masked_mean(x, mask)) * jax.lax.rsqrt(masked_var(x, mask) + 1e-8)
    return jnp.where(on, out, 0.0)


def group_advantages(scores, group_size: int, kind: str) -> jax.Array:
    """Critic-free sequence advantages from n samples per question, rows prompt-major
    (rows i*n .. i*n+n-1 are question i's samples). Returns (rows,).

    "grpo": (s - group mean) / (group std + 1e-6) with the population std (ddof 0): it is defined
        for any n (n = 1 gives 0 rather than NaN) and is the group's own spread, not an estimate
        of a wider one. (DeepSeekMath's code uses torch's unbiased std; for n samples the two
        differ by the constant sqrt(n / (n - 1)), a rescaling of the advantages.)
    "rloo": s - mean of the OTHER n - 1 samples, a baseline independent of the sample itself
        (so the estimate stays unbiased); needs n >= 2.
    """
    if kind not in GROUP_KINDS:
        choices = ", ".join(GROUP_KINDS)
        raise ReftError(f"unknown group advantage kind {kind!r}; choose one of {choices}")
    s = _f32(scores)
    rows = s.shape[0]
    if group_size < 1 or rows % group_size:
        raise ReftError(f"group_size {group_size} must be >= 1 and divide the {rows} rows")
    if kind == "rloo" and group_size < 2:
        raise ReftError("rloo needs at least 2 samples per question (group_size >= 2)")
    g = s.reshape(rows // group_size, group_size)
    mean = g.mean(axis=1, keepdims=True)
    if kind == "grpo":
        adv = (g - mean) / (g.std(axis=1, keepdims=True) + 1e-6)
    else:
        adv = g - (g.sum(axis=1, keepdims=True) - g) / (group_size - 1)
    return adv.reshape(rows)


def sequence_advantages_to_tokens(adv, mask) -> jax.Array:
    """Give every response token its sequence's advantage (the critic-free credit assignment)."""
    return jnp.where(_on(mask), _f32(adv)[:, None], 0.0)
