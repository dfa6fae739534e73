"""Activations stay split by rows: the residual stream's placement inside a sharded step.

Parameters carry logical axes; activations do not, so XLA's partitioner chooses their layout
itself, and under fsdp it followed the weights: the residual stream split along the embedding
and every row held by every device, each MLP product of the whole batch on each device. For
the Qwen2.5-0.5B shape's SFT step at 48 x 1024 on 8 fsdp devices that planned 48.7 GiB of
temporaries per device; with the rows pinned to the data x fsdp devices (the weights then
gathered layer by layer, ZeRO-3 style) 8.7 GiB (`python -m reft_jax.plan`, XLA's CPU plan).

A step compiled for a mesh traces its body `on_mesh` (train/step.py, train/ppo_step.py); the
decoder calls `constrain_rows` on its residual stream, which does nothing outside one.
"""

from __future__ import annotations

import functools
import math

import jax
from jax.sharding import Mesh, PartitionSpec

from reft_jax.parallel.mesh import BATCH_AXES


def on_mesh(mesh: Mesh, fn):
    """`fn`, traced with `mesh` as the one `constrain_rows` places rows on."""

    @functools.wraps(fn)
    def traced(*args, **kwargs):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return fn(*args, **kwargs)

    return traced


def constrain_rows(x: jax.Array) -> jax.Array:
    """x with its leading axis (rows) split over the data x fsdp devices of the mesh being
    traced on; unchanged outside `on_mesh`, or when the rows do not split evenly."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or not set(BATCH_AXES) <= set(mesh.axis_names):
        return x
    split = math.prod(mesh.shape[axis] for axis in BATCH_AXES)
    if split == 1 or x.shape[0] % split:
        return x
    return jax.lax.with_sharding_constraint(x, PartitionSpec(BATCH_AXES))
