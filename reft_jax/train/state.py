"""The train state (step, parameters, optimizer state) and the AdamW optimizer with its schedule.

Parameters are kept as the model's pure dict of arrays (`nnx.to_pure_dict`), so the whole state
is a plain pytree that optax updates, jit donates and orbax saves without knowing about NNX.
The learning rate is injected as a hyperparameter, so the optimizer state itself records the
rate the last update used and a step can report it without being handed the schedule.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from reft_jax.errors import ReftError
from reft_jax.models import CausalLM
from reft_jax.parallel.hosts import to_host

SCHEDULES = ("linear", "constant")


def make_schedule(learning_rate: float, total_steps: int, warmup_ratio: float,
                  schedule: str = "linear") -> optax.Schedule:
    """Linear warm-up over round(warmup_ratio * total_steps) steps, then linear decay to 0 at
    total_steps ("linear") or the peak rate held ("constant")."""
    if schedule not in SCHEDULES:
        raise ReftError(f"schedule={schedule!r} is not supported; use one of {SCHEDULES}")
    warmup = int(round(warmup_ratio * total_steps))
    after = (optax.constant_schedule(learning_rate) if schedule == "constant" else
             optax.linear_schedule(learning_rate, 0.0, max(total_steps - warmup, 1)))
    if warmup == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, learning_rate, warmup), after], [warmup])


def make_optimizer(learning_rate: float, total_steps: int, warmup_ratio: float,
                   weight_decay: float, adam_eps: float, grad_clip: float,
                   schedule: str = "linear") -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW (b1 0.9, b2 0.999) after global-norm clipping (grad_clip <= 0: none); returns
    (optimizer, schedule)."""
    lr = make_schedule(learning_rate, total_steps, warmup_ratio, schedule)

    def build(learning_rate):
        adamw = optax.adamw(learning_rate, b1=0.9, b2=0.999, eps=adam_eps, weight_decay=weight_decay)
        if grad_clip <= 0:  # 0 switches clipping off, as in transformers' Trainer
            return adamw
        return optax.chain(optax.clip_by_global_norm(grad_clip), adamw)

    return optax.inject_hyperparams(build)(learning_rate=lr), lr


def learning_rate_of(opt_state: Any) -> jax.Array:
    """The rate the last update used, read from an optimizer built by `make_optimizer`."""
    hyper = getattr(opt_state, "hyperparams", None)
    if hyper is None or "learning_rate" not in hyper:
        return jnp.float32(jnp.nan)
    return jnp.asarray(hyper["learning_rate"], jnp.float32)


@struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: updates applied so far
    params: Any  # nested dict of arrays, the model's nnx.Param values
    opt_state: Any


def create_train_state(model: CausalLM, optimizer: optax.GradientTransformation
                       ) -> tuple[nnx.GraphDef, TrainState]:
    """Split the model into its static graph and a fresh train state.

    The parameters are copied: the step donates the state, and donation must not delete the
    arrays of the caller's model (which may still serve as a reference or be sampled from).
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    if jax.tree.leaves(rest):
        raise ReftError("the model holds state besides nnx.Param; the train state keeps only Params")
    params = jax.tree.map(lambda a: jnp.array(a, copy=True), nnx.to_pure_dict(params))
    return graphdef, TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params))


def merge_model(graphdef: nnx.GraphDef, state: TrainState) -> CausalLM:
    """The model with the state's parameters (for the sampler or save_pretrained).

    It shares the state's arrays: use it before the next (donating) step, or copy it.
    """
    return nnx.merge(graphdef, state.params)


def gathered_model(graphdef: nnx.GraphDef, state: TrainState) -> CausalLM:
    """`merge_model`, with every parameter whole on this process: over several processes the
    sharded parameters are gathered from all of them first (call it on every process)."""
    if jax.process_count() == 1:
        return merge_model(graphdef, state)
    return nnx.merge(graphdef, jax.tree.map(jnp.asarray, to_host(state.params)))
