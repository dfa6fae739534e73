"""ReFT's two jitted passes over a rollout batch: the no-grad pass and the PPO loss.

The no-grad pass reads, with the parameters the rollout was sampled with, each response token's
log-probability and value and the frozen reference's log-probability, then turns the scores
into per-token KL-penalised rewards, runs GAE and whitens the advantages over every response
token of the batch (a global array, so over all devices and hosts at once). The loss is the
shared step's `loss_terms`: per-sequence means of the clipped policy and value losses, summed
over the sequences, with the number of sequences as the count. Old log-probs come from the very
function the update differentiates, so the first ratio of the first PPO epoch is exactly 1.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from reft_jax.models import PolicyWithValue
from reft_jax.rl import (gae, group_advantages, kl_penalized_rewards, kl_penalty, masked_mean,
                         masked_var, masked_whiten, ppo_row_losses,
                         sequence_advantages_to_tokens)
from reft_jax.parallel.activations import on_mesh
from reft_jax.train.placement import Placement

ADVANTAGE_ESTIMATORS = ("gae", "grpo", "rloo")


@dataclasses.dataclass(frozen=True)
class PPOSettings:
    """The static numbers of the PPO math (the paper's defaults in `config.reft`)."""

    gamma: float = 1.0
    lam: float = 0.95
    clip_ratio: float = 0.2
    value_clip: float = 0.2
    vf_coef: float = 5.0
    kl_estimator: str = "k1"
    advantage: str = "gae"  # or "grpo" / "rloo": critic-free, group-normalised scores
    samples_per_question: int = 1  # the group size of grpo / rloo
    entropy_coef: float = 0.0

    @property
    def uses_critic(self) -> bool:
        return self.advantage == "gae"

    @classmethod
    def from_config(cls, r) -> "PPOSettings":
        return cls(r.gamma, r.lam, r.clip_ratio, r.value_clip, r.vf_coef, r.kl_estimator,
                   r.advantage, r.samples_per_question, r.entropy_coef)


def response_terms(model, input_ids, attention_mask, width: int, with_entropy: bool = False):
    """(log-probs, values or None, entropies or None), each (rows, width), of the last `width`
    tokens of each row, from one trunk pass: log p of response token j, and the value of (and
    the next-token entropy at) the state it was chosen in, one position before it."""
    critic = isinstance(model, PolicyWithValue)
    lm = model.lm if critic else model
    hidden, _ = lm.hidden_states(input_ids, attention_mask=attention_mask)
    start = input_ids.shape[1] - width - 1
    states = hidden[:, start:-1]
    log_probs = lm.token_log_probs(states, input_ids[:, start + 1:])
    values = model.value_head(states) if critic else None
    entropies = lm.token_entropies(states) if with_entropy else None
    return log_probs, values, entropies


def ppo_loss_terms(model, micro: dict, settings: PPOSettings):
    """(sum over sequences of pg + vf_coef * vf - entropy_coef * entropy, sequences, sums)."""
    mask = micro["mask"]
    log_probs, values, entropies = response_terms(
        model, micro["input_ids"], micro["attention_mask"], mask.shape[1],
        with_entropy=settings.entropy_coef > 0)
    rows = ppo_row_losses(log_probs, micro["old_logprobs"], values,
                          micro["old_values"] if settings.uses_critic else None,
                          micro["advantages"], micro["returns"] if settings.uses_critic else None,
                          mask, settings.clip_ratio, settings.value_clip)
    present = (jnp.sum(mask, axis=-1) > 0).astype(jnp.float32)  # a padding row counts for nothing
    loss = rows["pg"] + settings.vf_coef * rows["vf"]
    if entropies is not None:
        rows["entropy_bonus"] = masked_mean(entropies, mask, axis=-1)
        loss = loss - settings.entropy_coef * rows["entropy_bonus"]
    sums = {f"{name}_loss" if name in ("pg", "vf") else name: jnp.sum(value * present)
            for name, value in rows.items()}
    return jnp.sum(loss * present), jnp.sum(present), sums


def advantages_and_returns(scores, log_probs, ref_log_probs, values, mask, kl_coef,
                           settings: PPOSettings):
    """(token advantages, returns or None, per-token KL) from a rollout's scores."""
    if settings.uses_critic:
        rewards = kl_penalized_rewards(scores, log_probs, ref_log_probs, mask, kl_coef,
                                       settings.kl_estimator)
        advantages, returns = gae(rewards, values, mask, settings.gamma, settings.lam)
        return masked_whiten(advantages, mask), returns
    # Critic-free: the KL penalty enters each sequence's score, then scores are compared within
    # the group of samples of the same question.
    kl = jnp.sum(jnp.where(mask > 0, kl_penalty(log_probs, ref_log_probs, settings.kl_estimator),
                           0.0), axis=-1)
    sequence = group_advantages(scores - kl_coef * kl, settings.samples_per_question,
                                settings.advantage)
    return sequence_advantages_to_tokens(sequence, mask), None


def rollout_pass(graphdef: nnx.GraphDef, ref_graphdef: nnx.GraphDef, settings: PPOSettings,
                 params, ref_params, batch: dict, scores, kl_coef) -> tuple[dict, dict]:
    """(update inputs: old log-probs, values, advantages, returns; metrics) of a rollout."""
    policy, reference = nnx.merge(graphdef, params), nnx.merge(ref_graphdef, ref_params)
    mask, width = batch["mask"], batch["mask"].shape[1]
    log_probs, values, _ = response_terms(policy, batch["input_ids"], batch["attention_mask"], width)
    ref_log_probs = reference.next_token_log_probs(
        reference.hidden_states(batch["input_ids"], attention_mask=batch["attention_mask"])[0],
        batch["input_ids"], batch["input_ids"].shape[1] - width - 1)
    log_probs = jax.lax.stop_gradient(log_probs)
    advantages, returns = advantages_and_returns(scores, log_probs, ref_log_probs, values, mask,
                                                 kl_coef, settings)
    kl = kl_penalty(log_probs, ref_log_probs, settings.kl_estimator)
    metrics = {
        "kl": jnp.mean(jnp.sum(jnp.where(mask > 0, kl, 0.0), axis=-1)),  # per sequence
        "entropy": -masked_mean(log_probs, mask),  # the sampled tokens' estimate, at temperature 1
    }
    inputs = {"old_logprobs": log_probs, "advantages": advantages}
    if settings.uses_critic:
        inputs.update(old_values=values, returns=returns)
        metrics["value_mean"] = masked_mean(values, mask)
        metrics["explained_variance"] = 1.0 - masked_var(returns - values, mask) / jnp.maximum(
            masked_var(returns, mask), 1e-8)
    return inputs, metrics


def make_rollout_pass(graphdef: nnx.GraphDef, ref_graphdef: nnx.GraphDef, settings: PPOSettings,
                      placement: Placement | None = None, ref_shardings=None):
    """The jitted `rollout_pass(params, ref_params, batch, scores, kl_coef)`; with a placement
    compiled for the run's mesh: rows over data x fsdp, parameters where the state keeps them."""
    fn = functools.partial(rollout_pass, graphdef, ref_graphdef, settings)
    if placement is None:
        return jax.jit(fn)
    rows = placement.rows_at(0)
    replicated = NamedSharding(placement.mesh, PartitionSpec())
    return jax.jit(on_mesh(placement.mesh, fn),
                   in_shardings=(placement.state.params, ref_shardings, rows, rows, replicated),
                   out_shardings=(rows, replicated))
