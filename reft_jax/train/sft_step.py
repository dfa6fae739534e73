"""The SFT loss: token-weighted cross entropy on target tokens, as `loss_terms` of the shared step.

The loss is returned as (sum of NLL, number of target tokens), so `make_train_step` divides once
over the whole global batch and accumulated micro-batches give exactly the big batch's step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reft_jax.train.step import make_train_step

OPTIONAL_INPUTS = ("positions", "segment_ids")


def sft_loss_terms(model, micro: dict) -> tuple[jax.Array, jax.Array, dict]:
    """(sum of next-token NLL, count, {}) over targets: loss_mask[b, t] = 1 marks token t as a
    target, predicted from position t - 1 (so loss_mask[:, 0] can never count)."""
    extra = {k: micro[k] for k in OPTIONAL_INPUTS if k in micro}
    hidden, _ = model.hidden_states(micro["input_ids"], attention_mask=micro["attention_mask"],
                                    **extra)
    log_probs = model.next_token_log_probs(hidden, micro["input_ids"])
    weights = (micro["loss_mask"] * micro["attention_mask"])[:, 1:].astype(jnp.float32)
    return -jnp.sum(jnp.where(weights > 0, log_probs, 0.0) * weights), jnp.sum(weights), {}


def make_sft_step(graphdef, optimizer, grad_accum: int = 1, placement=None):
    """The shared step with the SFT loss: batch arrays (grad_accum, micro_batch, length) of
    input_ids, attention_mask, loss_mask and optionally positions and segment_ids (packed rows)."""
    return make_train_step(graphdef, optimizer, sft_loss_terms, grad_accum, placement)
