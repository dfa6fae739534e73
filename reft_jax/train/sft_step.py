"""The pure SFT step: token-weighted cross entropy on target tokens, accumulated, one AdamW update.

Losses are returned as (sum of NLL, number of target tokens) and divided once over the whole
global batch, so accumulating micro-batches gives exactly the step of one big batch whatever
the target lengths (Tunix style). A step whose loss or gradient is not finite returns its input
state, so the trainer can stop with the last good parameters.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from reft_jax.train.placement import Placement
from reft_jax.train.state import TrainState, learning_rate_of

OPTIONAL_INPUTS = ("positions", "segment_ids")


def sft_loss_terms(model, micro: dict) -> tuple[jax.Array, jax.Array]:
    """(sum of next-token NLL, count) over targets: loss_mask[b, t] = 1 marks token t as a
    target, predicted from position t - 1 (so loss_mask[:, 0] can never count)."""
    extra = {k: micro[k] for k in OPTIONAL_INPUTS if k in micro}
    hidden, _ = model.hidden_states(micro["input_ids"], attention_mask=micro["attention_mask"],
                                    **extra)
    # Shift the targets, not the hidden states: the last position predicts nothing (weight 0).
    loss_mask = micro["loss_mask"] * micro["attention_mask"]
    targets = jnp.pad(micro["input_ids"][:, 1:], ((0, 0), (0, 1)))
    weights = jnp.pad(loss_mask[:, 1:], ((0, 0), (0, 1))).astype(jnp.float32)
    log_probs = model.token_log_probs(hidden, targets)
    return -jnp.sum(jnp.where(weights > 0, log_probs, 0.0) * weights), jnp.sum(weights)


def _micro_loss(graphdef: nnx.GraphDef, params, micro: dict) -> tuple[jax.Array, jax.Array]:
    return sft_loss_terms(nnx.merge(graphdef, params), micro)


def accumulated_gradients(graphdef: nnx.GraphDef, params, batch: dict):
    """(sum NLL, tokens, gradient of the token-mean loss) over the leading micro-batch axis."""
    grad_fn = jax.value_and_grad(lambda p, m: _micro_loss(graphdef, p, m), has_aux=True)
    zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)

    def body(carry, micro):
        nll_sum, tokens, grads = carry
        (nll, count), g = grad_fn(params, micro)
        grads = jax.tree.map(lambda a, b: a + b.astype(jnp.float32), grads, g)
        return (nll_sum + nll, tokens + count, grads), None

    init = (jnp.float32(0), jnp.float32(0), zeros)
    (nll_sum, tokens, grads), _ = jax.lax.scan(body, init, batch)
    scale = 1.0 / jnp.maximum(tokens, 1.0)
    grads = jax.tree.map(lambda g, p: (g * scale).astype(p.dtype), grads, params)
    return nll_sum, tokens, grads


def make_sft_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation,
                  grad_accum: int = 1, placement: Placement | None = None
                  ) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """A jitted `step(state, batch) -> (state, metrics)` with the state donated.

    batch arrays are (grad_accum, micro_batch, length): input_ids, attention_mask, loss_mask and
    optionally positions and segment_ids (packed rows). With a placement the step is compiled
    for its state and batch shardings and keeps the state where it is; metrics come back
    replicated.
    """

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        lead = batch["input_ids"].shape[0]
        if lead != grad_accum:
            raise ValueError(f"batch leading axis {lead} != grad_accum {grad_accum}")
        nll_sum, tokens, grads = accumulated_gradients(graphdef, state.params, batch)
        loss = nll_sum / jnp.maximum(tokens, 1.0)
        grad_norm = optax.global_norm(grads).astype(jnp.float32)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        keep = lambda new, old: jnp.where(finite, new, old)
        new_state = TrainState(
            step=state.step + finite.astype(state.step.dtype),
            params=jax.tree.map(keep, params, state.params),
            opt_state=jax.tree.map(keep, opt_state, state.opt_state))
        metrics = {"loss": loss.astype(jnp.float32), "tokens": tokens, "grad_norm": grad_norm,
                   "learning_rate": learning_rate_of(opt_state),
                   "finite": finite.astype(jnp.float32)}
        return new_state, metrics

    if placement is None:
        return jax.jit(step, donate_argnums=0)
    replicated = NamedSharding(placement.mesh, PartitionSpec())
    return jax.jit(step, donate_argnums=0, in_shardings=(placement.state, placement.rows),
                   out_shardings=(placement.state, replicated))
