"""ReFT's RL math against independent numpy oracles: explicit loops over rows and time, as the
reference code (mwp_ReFT / trl's PPO) computes them, on batches with EOS-ended, truncated
(length-limit) and one-token responses, and garbage in the padding."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reft_jax.rl import (
    AdaptiveKLController,
    FixedKLController,
    gae,
    group_advantages,
    kl_penalized_rewards,
    kl_penalty,
    masked_mean,
    masked_var,
    masked_whiten,
    ppo_loss,
    ppo_row_losses,
    sequence_advantages_to_tokens,
)

T = 9
LENGTHS = [9, 1, 4, 7, 9, 3]  # rows 0 and 4 hit the length limit (no EOS); row 1 is one token


def mask_of(lengths, t=T):
    return (np.arange(t)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)


def batch(seed=0, lengths=LENGTHS):
    """Random response-aligned arrays; padding holds large garbage the functions must ignore."""
    rng = np.random.default_rng(seed)
    rows = len(lengths)
    mask = mask_of(lengths)

    def arr(scale=1.0, shift=0.0):
        x = shift + scale * rng.normal(size=(rows, T))
        return np.where(mask > 0, x, 1e3 * rng.normal(size=(rows, T))).astype(np.float32)

    return dict(
        mask=mask,
        lengths=list(lengths),
        scores=rng.choice([0.0, 0.1, 1.0], size=rows).astype(np.float32),
        logprobs=arr(0.5, -2.0),
        old_logprobs=arr(0.5, -2.0),
        ref_logprobs=arr(0.5, -2.0),
        values=arr(0.5),
        old_values=arr(0.5),
        advantages=arr(),
        returns=arr(),
        rewards=arr(),
    )


# ----------------------------------------------------------------------------- numpy oracles


def oracle_rewards(scores, lp, ref, lengths, coef, estimator):
    out = np.zeros(lp.shape)
    for i, n in enumerate(lengths):
        for t in range(n):
            d = float(lp[i, t]) - float(ref[i, t])
            kl = d if estimator == "k1" else math.exp(-d) + d - 1.0
            out[i, t] = -coef * kl
        out[i, n - 1] += scores[i]
    return out


def oracle_gae(rewards, values, lengths, gamma, lam):
    adv = np.zeros(rewards.shape)
    ret = np.zeros(rewards.shape)
    for i, n in enumerate(lengths):
        last = 0.0
        for t in reversed(range(n)):
            next_v = float(values[i, t + 1]) if t + 1 < n else 0.0
            delta = float(rewards[i, t]) + gamma * next_v - float(values[i, t])
            last = delta + gamma * lam * last
            adv[i, t] = last
            ret[i, t] = last + float(values[i, t])
    return adv, ret


def oracle_whiten(x, lengths):
    flat = np.concatenate([x[i, :n].astype(np.float64) for i, n in enumerate(lengths)])
    mean, var = flat.mean(), flat.var(ddof=1)
    out = np.zeros(x.shape)
    for i, n in enumerate(lengths):
        for t in range(n):
            out[i, t] = (x[i, t] - mean) / math.sqrt(var + 1e-8)
    return out


def oracle_ppo(b, clip_ratio, clip_value, vf_coef, critic=True):
    rows = {k: [] for k in ("pg", "vf", "clipfrac", "vf_clipfrac", "approx_kl")}
    for i, n in enumerate(b["lengths"]):
        acc = dict.fromkeys(rows, 0.0)
        for t in range(n):
            d = float(b["logprobs"][i, t]) - float(b["old_logprobs"][i, t])
            a, ratio = float(b["advantages"][i, t]), math.exp(d)
            plain = -a * ratio
            clipped = -a * min(max(ratio, 1 - clip_ratio), 1 + clip_ratio)
            acc["pg"] += max(plain, clipped)
            acc["clipfrac"] += float(clipped > plain)
            acc["approx_kl"] += 0.5 * d * d
            if critic:
                v, v_old = float(b["values"][i, t]), float(b["old_values"][i, t])
                r = float(b["returns"][i, t])
                v_clip = min(max(v, v_old - clip_value), v_old + clip_value)
                acc["vf"] += 0.5 * max((v - r) ** 2, (v_clip - r) ** 2)
                acc["vf_clipfrac"] += float((v_clip - r) ** 2 > (v - r) ** 2)
        for k in rows:
            rows[k].append(acc[k] / n)
    rows = {k: np.array(v) for k, v in rows.items()}
    means = {k: v.mean() for k, v in rows.items()}
    return rows, means["pg"] + vf_coef * means["vf"], means


def assert_zero_off_mask(x, mask):
    assert np.all(np.asarray(x)[mask == 0] == 0.0)


# ----------------------------------------------------------------------------- rewards


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_penalized_rewards_match_oracle(estimator):
    b = batch()
    got = kl_penalized_rewards(b["scores"], b["logprobs"], b["ref_logprobs"], b["mask"], 0.05,
                               estimator)
    want = oracle_rewards(b["scores"], b["logprobs"], b["ref_logprobs"], b["lengths"], 0.05,
                          estimator)
    assert got.shape == b["mask"].shape and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert_zero_off_mask(got, b["mask"])


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_part_is_exactly_zero_when_policy_is_reference(estimator):
    b = batch(1)
    got = np.asarray(kl_penalized_rewards(b["scores"], b["logprobs"], b["logprobs"], b["mask"],
                                          0.05, estimator))
    want = np.zeros_like(got)
    for i, n in enumerate(b["lengths"]):
        want[i, n - 1] = b["scores"][i]  # the score alone, on the EOS / last action
    assert np.array_equal(got, want)


def test_kl_penalty_estimators_and_unknown_name():
    lp, ref = np.array([-1.0, -2.0, -0.5], np.float32), np.array([-1.5, -1.0, -0.5], np.float32)
    np.testing.assert_allclose(kl_penalty(lp, ref, "k1"), lp - ref, rtol=1e-6)
    r = ref.astype(np.float64) - lp
    np.testing.assert_allclose(kl_penalty(lp, ref, "k3"), np.exp(r) - r - 1, rtol=1e-5, atol=1e-7)
    assert np.all(np.asarray(kl_penalty(lp, ref, "k3")) >= 0)
    with pytest.raises(ValueError, match="k1, k3"):
        kl_penalty(lp, ref, "k2")


# ----------------------------------------------------------------------------- GAE and whitening


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.8)])
def test_gae_matches_reverse_loop(gamma, lam):
    b = batch(2)
    adv, ret = gae(b["rewards"], b["values"], b["mask"], gamma, lam)
    want_adv, want_ret = oracle_gae(b["rewards"], b["values"], b["lengths"], gamma, lam)
    np.testing.assert_allclose(adv, want_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, want_ret, rtol=1e-5, atol=1e-5)
    assert_zero_off_mask(adv, b["mask"])
    assert_zero_off_mask(ret, b["mask"])
    on = b["mask"] > 0
    np.testing.assert_allclose(np.asarray(ret)[on], (np.asarray(adv) + b["values"])[on], atol=1e-6)


def test_gae_one_token_response_is_reward_minus_value():
    adv, ret = gae(np.array([[2.0, 9.0]]), np.array([[0.5, 7.0]]), np.array([[1, 0]]), 1.0, 0.95)
    np.testing.assert_allclose(adv, [[1.5, 0.0]])
    np.testing.assert_allclose(ret, [[2.0, 0.0]])


def test_masked_whiten_matches_numpy():
    b = batch(3)
    got = masked_whiten(b["advantages"], b["mask"])
    np.testing.assert_allclose(got, oracle_whiten(b["advantages"], b["lengths"]), rtol=1e-5,
                               atol=1e-5)
    assert_zero_off_mask(got, b["mask"])
    flat = np.concatenate([b["advantages"][i, :n] for i, n in enumerate(b["lengths"])])
    np.testing.assert_allclose(masked_mean(b["advantages"], b["mask"]), flat.mean(), rtol=1e-5)
    np.testing.assert_allclose(masked_var(b["advantages"], b["mask"]), flat.var(ddof=1), rtol=1e-5)


@pytest.mark.parametrize("value", [3.0, 0.1])
def test_masked_whiten_of_equal_values_is_finite_zero(value):
    mask = mask_of(LENGTHS)
    got = np.asarray(masked_whiten(np.full(mask.shape, value, np.float32), mask))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, 0.0, atol=1e-3)
    assert_zero_off_mask(got, mask)


def test_masked_stats_on_row_axis_and_single_entry():
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    m = np.array([[1, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(masked_mean(x, m, axis=-1), [1.5, 0.0])  # empty row: 0, not NaN
    assert float(masked_var(x, np.array([[0, 1, 0], [0, 0, 0]]))) == 0.0  # n - 1 floored at 1


def test_all_zero_rows_and_nan_padding_give_finite_results():
    b = batch(4, lengths=[3, 0, 9])  # row 1 has no response token at all
    on = b["mask"] > 0
    for k in ("logprobs", "old_logprobs", "ref_logprobs", "values", "old_values", "advantages",
              "returns", "rewards"):
        b[k] = np.where(on, b[k], np.nan).astype(np.float32)
    r = kl_penalized_rewards(b["scores"], b["logprobs"], b["ref_logprobs"], b["mask"], 0.05, "k3")
    adv, ret = gae(b["rewards"], b["values"], b["mask"], 1.0, 0.95)
    w = masked_whiten(adv, b["mask"])
    loss, metrics = ppo_loss(b["logprobs"], b["old_logprobs"], b["values"], b["old_values"],
                             b["advantages"], b["returns"], b["mask"], 0.2, 0.2, 5.0)
    for x in (r, adv, ret, w, loss, *metrics.values()):
        assert np.all(np.isfinite(np.asarray(x)))
    for x in (r, adv, ret, w):
        assert_zero_off_mask(x, b["mask"])
    grads = jax.grad(lambda lp, v: ppo_loss(lp, b["old_logprobs"], v, b["old_values"],
                                            b["advantages"], b["returns"], b["mask"],
                                            0.2, 0.2, 5.0)[0], (0, 1))(b["logprobs"], b["values"])
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g)))


# ----------------------------------------------------------------------------- critic-free


def test_group_advantages_grpo_by_hand():
    s = np.array([1.0, 0.0, 0.1, 1.0], np.float32)
    # n = 2: groups (1, 0) mean .5 std .5; (.1, 1) mean .55 std .45 (population std)
    want2 = [0.5 / 0.500001, -0.5 / 0.500001, -0.45 / 0.450001, 0.45 / 0.450001]
    np.testing.assert_allclose(group_advantages(s, 2, "grpo"), want2, rtol=1e-5)
    # n = 4: mean .525; deviations .475 -.525 -.425 .475; population var .9075 / 4
    std = math.sqrt(0.9075 / 4)
    want4 = np.array([0.475, -0.525, -0.425, 0.475]) / (std + 1e-6)
    np.testing.assert_allclose(group_advantages(s, 4, "grpo"), want4, rtol=1e-5)
    np.testing.assert_allclose(group_advantages(np.ones(3, np.float32), 1, "grpo"), 0.0)


def test_group_advantages_rloo_by_hand_and_errors():
    s = np.array([1.0, 0.0, 0.1, 1.0], np.float32)
    np.testing.assert_allclose(group_advantages(s, 2, "rloo"), [1.0, -1.0, -0.9, 0.9], rtol=1e-6)
    want4 = [1 - 1.1 / 3, 0 - 2.1 / 3, 0.1 - 2.0 / 3, 1 - 1.1 / 3]  # others' mean; sum is 2.1
    np.testing.assert_allclose(group_advantages(s, 4, "rloo"), want4, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="rloo"):
        group_advantages(s, 1, "rloo")
    with pytest.raises(ValueError, match="divide"):
        group_advantages(s, 3, "grpo")
    with pytest.raises(ValueError, match="grpo, rloo"):
        group_advantages(s, 2, "ppo")


def test_sequence_advantages_to_tokens():
    mask = mask_of([2, 1, 3], t=3)
    got = sequence_advantages_to_tokens(np.array([0.5, -1.0, 2.0], np.float32), mask)
    np.testing.assert_array_equal(got, [[0.5, 0.5, 0.0], [-1.0, 0.0, 0.0], [2.0, 2.0, 2.0]])


# ----------------------------------------------------------------------------- PPO losses


@pytest.mark.parametrize("seed", [5, 6])
def test_ppo_losses_match_oracle(seed):
    b = batch(seed)
    args = [b[k] for k in ("logprobs", "old_logprobs", "values", "old_values", "advantages",
                           "returns", "mask")]
    want_rows, want_loss, want = oracle_ppo(b, 0.2, 0.2, 5.0)
    rows = ppo_row_losses(*args, 0.2, 0.2)
    for k, v in want_rows.items():
        np.testing.assert_allclose(rows[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    loss, metrics = ppo_loss(*args, 0.2, 0.2, 5.0)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    for k, mk in [("pg", "pg_loss"), ("vf", "vf_loss"), ("clipfrac", "clipfrac"),
                  ("approx_kl", "approx_kl"), ("vf_clipfrac", "vf_clipfrac")]:
        np.testing.assert_allclose(metrics[mk], want[k], rtol=1e-5, atol=1e-7, err_msg=mk)
    assert 0 < float(metrics["clipfrac"]) < 1 and 0 < float(metrics["vf_clipfrac"]) < 1


def test_ppo_critic_free_has_zero_value_terms():
    b = batch(7)
    loss, metrics = ppo_loss(b["logprobs"], b["old_logprobs"], None, None, b["advantages"], None,
                             b["mask"], 0.2, 0.2, 5.0)
    _, want_loss, want = oracle_ppo(b, 0.2, 0.2, 5.0, critic=False)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    assert float(metrics["vf_loss"]) == 0.0 and float(metrics["vf_clipfrac"]) == 0.0


def test_ppo_clipped_policy_by_hand():
    # ratio e and 1/e against A = +1 and -1: the clip wins for (A>0, r=e) and (A<0, r=1/e)
    d = np.array([[1.0, -1.0, 1.0, -1.0]], np.float32)
    adv = np.array([[1.0, 1.0, -1.0, -1.0]], np.float32)
    rows = ppo_row_losses(d, np.zeros_like(d), None, None, adv, None, np.ones_like(d), 0.2, 0.2)
    want_pg = (-1.2 - math.exp(-1) + math.e + 0.8) / 4
    np.testing.assert_allclose(rows["pg"], [want_pg], rtol=1e-6)
    np.testing.assert_allclose(rows["clipfrac"], [0.5])
    np.testing.assert_allclose(rows["approx_kl"], [0.5])


def test_ppo_unclipped_policy_is_minus_mean_advantage():
    b = batch(8)
    rows = ppo_row_losses(b["logprobs"], b["logprobs"], None, None, b["advantages"], None,
                          b["mask"], 0.2, 0.2)
    want = [-b["advantages"][i, :n].mean() for i, n in enumerate(b["lengths"])]
    np.testing.assert_allclose(rows["pg"], want, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(rows["clipfrac"]) == 0) and np.all(np.asarray(rows["approx_kl"]) == 0)


def test_value_clipping_active_and_inactive_by_hand():
    ones = np.ones((1, 3), np.float32)
    v = np.array([[1.0, 1.0, 0.3]], np.float32)
    v_old = np.array([[0.0, 0.0, 0.3]], np.float32)
    ret = np.array([[1.0, 0.0, 1.3]], np.float32)
    rows = ppo_row_losses(ones, ones, v, v_old, ones, ret, ones, 0.2, 0.2)
    # token 0: clip pulls V to .2, (.2 - 1)^2 = .64 wins; token 1: unclipped 1 > .04;
    # token 2: V == V_old, so no clipping: (.3 - 1.3)^2 = 1
    np.testing.assert_allclose(rows["vf"], [0.5 * (0.64 + 1.0 + 1.0) / 3], rtol=1e-5)
    np.testing.assert_allclose(rows["vf_clipfrac"], [1 / 3], rtol=1e-6)


def test_padding_rows_do_not_change_the_loss():
    b = batch(9)
    pad = batch(10, lengths=[0, 0])
    args = ("logprobs", "old_logprobs", "values", "old_values", "advantages", "returns", "mask")
    loss, _ = ppo_loss(*[b[k] for k in args], 0.2, 0.2, 5.0)
    padded, _ = ppo_loss(*[np.concatenate([b[k], pad[k]]) for k in args], 0.2, 0.2, 5.0)
    np.testing.assert_allclose(padded, loss, rtol=1e-6)


# ----------------------------------------------------------------------------- gradients


def test_gradients_are_zero_off_mask_and_per_sequence_averaged():
    b = batch(11)
    mask, lengths, vf_coef = b["mask"], np.array(b["lengths"], np.float32), 5.0
    old_lp, old_v = b["logprobs"], b["values"]  # evaluated at the old policy: nothing clips

    def loss(lp, v):
        return ppo_loss(lp, old_lp, v, old_v, b["advantages"], b["returns"], mask, 0.2, 0.2,
                        vf_coef)[0]

    g_lp, g_v = jax.grad(loss, (0, 1))(jnp.asarray(b["logprobs"]), jnp.asarray(b["values"]))
    g_lp, g_v = np.asarray(g_lp), np.asarray(g_v)
    assert_zero_off_mask(g_lp, mask)
    assert_zero_off_mask(g_v, mask)
    rows = len(lengths)
    scale = mask / lengths[:, None] / rows  # 1 / (row's token count) / (rows)
    np.testing.assert_allclose(g_lp, -b["advantages"] * scale, rtol=1e-5, atol=1e-7)
    want_v = vf_coef * (b["values"] - b["returns"]) * scale
    np.testing.assert_allclose(g_v, want_v, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- jit


def test_everything_runs_under_jit():
    b = batch(12)
    m = b["mask"]

    def pipeline(scores, lp, old_lp, ref, v, old_v, mask):
        r = kl_penalized_rewards(scores, old_lp, ref, mask, 0.05, "k3")
        adv, ret = gae(r, old_v, mask, 1.0, 0.95)
        adv = masked_whiten(adv, mask)
        loss, metrics = ppo_loss(lp, old_lp, v, old_v, adv, ret, mask, 0.2, 0.2, 5.0)
        seq = sequence_advantages_to_tokens(group_advantages(scores, 2, "rloo"), mask)
        return loss, metrics, seq

    args = (b["scores"], b["logprobs"], b["old_logprobs"], b["ref_logprobs"], b["values"],
            b["old_values"], m)
    eager = pipeline(*args)
    jitted = jax.jit(pipeline)(*args)
    for e, j in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(j, e, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- KL controllers


def test_adaptive_kl_controller_by_hand():
    c = AdaptiveKLController(0.05, target=6.0, horizon=10000)
    c.update(12.0, 32)  # 12 / 6 - 1 = 1, clipped to .2
    assert c.value == pytest.approx(0.05 * (1 + 0.2 * 32 / 10000), rel=1e-12)
    c = AdaptiveKLController(0.05, 6.0, 10000)
    c.update(0.0, 32)  # -1 clipped to -.2
    assert c.value == pytest.approx(0.05 * (1 - 0.2 * 32 / 10000), rel=1e-12)
    c = AdaptiveKLController(0.05, 6.0, 10000)
    c.update(6.6, 32)  # inside the clip: .1
    assert c.value == pytest.approx(0.05 * (1 + 0.1 * 32 / 10000), rel=1e-12)
    with pytest.raises(ValueError):
        AdaptiveKLController(0.05, 0.0, 10000)


def test_kl_controllers_state_dict_round_trip():
    a = AdaptiveKLController(0.05, 6.0, 10000)
    for kl in (12.0, 3.0, 7.0):
        a.update(kl, 32)
    b = AdaptiveKLController(0.05, 6.0, 10000)
    b.load_state_dict(a.state_dict())
    assert b.value == a.value
    a.update(9.0, 32)
    b.update(9.0, 32)
    assert b.value == a.value
    f = FixedKLController(0.01)
    f.update(100.0, 32)
    assert f.value == 0.01
    g = FixedKLController(0.5)
    g.load_state_dict(f.state_dict())
    assert g.value == 0.01
