"""One loss-agnostic, pure, jitted train step: accumulate a loss's gradient, one optimizer update.

A stage hands in `loss_terms(model, micro) -> (total, count, sums)`: the sum of its loss over a
micro-batch, what that sum is an average over (target tokens for SFT, sequences for PPO), and
other sums to report per the same count. Totals and counts are added over the micro-batches and
divided once over the whole global batch, so accumulating micro-batches gives exactly the step
of one big batch (Tunix style). A step whose loss or gradient is not finite returns its input
state, so the trainer can stop with the last good parameters.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from reft_jax.parallel.activations import on_mesh
from reft_jax.train.placement import Placement
from reft_jax.train.state import TrainState, learning_rate_of

LossTerms = Callable[[nnx.Module, dict], tuple[jax.Array, jax.Array, dict]]
Step = Callable[[TrainState, dict], tuple[TrainState, dict]]


def accumulated_gradients(graphdef: nnx.GraphDef, params, batch: dict, loss_terms: LossTerms):
    """(total, count, sums, gradient of total / count) over the leading micro-batch axis."""

    def micro_terms(p, micro):
        total, count, sums = loss_terms(nnx.merge(graphdef, p), micro)
        return total, (count, sums)

    grad_fn = jax.value_and_grad(micro_terms, has_aux=True)
    zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
    first = jax.tree.map(lambda x: x[0], batch)
    sums_shape = jax.eval_shape(lambda p, m: micro_terms(p, m)[1][1], params, first)
    zero_sums = jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32), sums_shape)

    def body(carry, micro):
        total, count, sums, grads = carry
        (t, (c, s)), g = grad_fn(params, micro)
        grads = jax.tree.map(lambda a, b: a + b.astype(jnp.float32), grads, g)
        sums = jax.tree.map(lambda a, b: a + b.astype(jnp.float32), sums, s)
        return (total + t, count + c, sums, grads), None

    init = (jnp.float32(0), jnp.float32(0), zero_sums, zeros)
    (total, count, sums, grads), _ = jax.lax.scan(body, init, batch)
    scale = 1.0 / jnp.maximum(count, 1.0)
    grads = jax.tree.map(lambda g, p: (g * scale).astype(p.dtype), grads, params)
    return total, count, sums, grads


def make_train_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation,
                    loss_terms: LossTerms, grad_accum: int = 1,
                    placement: Placement | None = None, count_name: str = "tokens") -> Step:
    """A jitted `step(state, batch) -> (state, metrics)` with the state donated.

    Batch arrays are (grad_accum, micro_batch, ...). With a placement the step is compiled for
    its state and batch shardings and keeps the state where it is; metrics come back replicated:
    `loss`, `count_name` (the summed count), each of the loss's sums divided by the count,
    `grad_norm`, `learning_rate` and `finite`.
    """

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        lead = jax.tree.leaves(batch)[0].shape[0]
        if lead != grad_accum:
            raise ValueError(f"batch leading axis {lead} != grad_accum {grad_accum}")
        total, count, sums, grads = accumulated_gradients(graphdef, state.params, batch,
                                                          loss_terms)
        per = 1.0 / jnp.maximum(count, 1.0)
        loss = total * per
        grad_norm = optax.global_norm(grads).astype(jnp.float32)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        keep = lambda new, old: jnp.where(finite, new, old)
        new_state = TrainState(
            step=state.step + finite.astype(state.step.dtype),
            params=jax.tree.map(keep, params, state.params),
            opt_state=jax.tree.map(keep, opt_state, state.opt_state))
        metrics = {name: value * per for name, value in sums.items()}
        metrics.update({"loss": loss.astype(jnp.float32), count_name: count,
                        "grad_norm": grad_norm, "learning_rate": learning_rate_of(opt_state),
                        "finite": finite.astype(jnp.float32)})
        return new_state, metrics

    if placement is None:
        return jax.jit(step, donate_argnums=0)
    replicated = NamedSharding(placement.mesh, PartitionSpec())
    return jax.jit(on_mesh(placement.mesh, step), donate_argnums=0,
                   in_shardings=(placement.state, placement.rows),
                   out_shardings=(placement.state, replicated))
