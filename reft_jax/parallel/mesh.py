"""The device mesh and the rules that place each parameter and batch on it.

Three mesh axes: `data` (rows of the batch; parameters replicated), `fsdp` (rows of the batch
too, and every parameter split along its embedding axis: ZeRO-3 style, gathered layer by layer
inside the step) and `tensor` (heads, MLP width and vocabulary split: Megatron style). Every
parameter names its logical axes (see `reft_jax.models.layers`), so placement is the table
below, not code in the model. XLA's SPMD partitioner turns the placements into collectives.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from reft_jax.errors import ReftError

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")  # a batch's rows are split over both
LOGICAL_RULES = {
    "embed": "fsdp",
    "vocab": "tensor",
    "heads": "tensor",
    "kv_heads": "tensor",
    "mlp": "tensor",
}  # anything else (layers, head_dim, positions, unnamed) is replicated


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1, devices=None) -> Mesh:
    """A (data, fsdp, tensor) mesh over all devices; one size may be -1 (whatever is left)."""
    devices = list(devices if devices is not None else jax.devices())
    sizes = {"data": data, "fsdp": fsdp, "tensor": tensor}
    free = [name for name, size in sizes.items() if size == -1]
    if len(free) > 1 or any(size == 0 or size < -1 for size in sizes.values()):
        raise ReftError(f"config.mesh {sizes}: sizes must be >= 1, with at most one -1")
    known = math.prod(size for size in sizes.values() if size != -1)
    if free:
        if len(devices) % known:
            raise ReftError(f"config.mesh {sizes}: {len(devices)} devices do not divide by {known}")
        sizes[free[0]] = len(devices) // known
    if math.prod(sizes.values()) != len(devices):
        raise ReftError(f"config.mesh {sizes} needs {math.prod(sizes.values())} devices; "
                        f"there are {len(devices)}")
    grid = np.asarray(devices, dtype=object).reshape([sizes[a] for a in MESH_AXES])
    return Mesh(grid, MESH_AXES)


def logical_spec(logical_axes, shape, mesh: Mesh) -> PartitionSpec:
    """PartitionSpec of an array from its logical axis names. A dimension that the mesh axis does
    not divide (say 3 KV heads over 2 tensor devices) stays whole; so does a mesh axis already
    used by an earlier dimension."""
    used, spec = set(), []
    for name, size in zip(logical_axes, shape):
        axis = LOGICAL_RULES.get(name)
        if axis is None or axis in used or mesh.shape[axis] == 1 or size % mesh.shape[axis]:
            spec.append(None)
        else:
            spec.append(axis)
            used.add(axis)
    return PartitionSpec(*spec)


def param_shardings(model: nnx.Module, mesh: Mesh) -> dict:
    """NamedShardings shaped like `nnx.to_pure_dict` of the model's parameters."""
    params = nnx.state(model, nnx.Param)
    shardings = jax.tree.map(
        lambda v: NamedSharding(mesh, logical_spec(v.get_metadata()["logical_axes"], v.shape, mesh)),
        params, is_leaf=lambda x: isinstance(x, nnx.Variable))
    return nnx.to_pure_dict(shardings)


def tree_shardings(tree: Any, params_like: Any, param_sharding: dict, mesh: Mesh) -> Any:
    """Shardings for a pytree holding copies of the parameter tree (optimizer moments) and
    other leaves (counts, hyperparameters): the copies are placed like the parameters, the rest
    replicated."""
    structure = jax.tree.structure(params_like)
    is_params = lambda node: jax.tree.structure(node) == structure
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda node: param_sharding if is_params(node) else replicated, tree,
                        is_leaf=is_params)


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
    """Rows along `batch_axis` split over the data and fsdp axes; everything else whole."""
    spec = [None] * (batch_axis + 1)
    spec[batch_axis] = BATCH_AXES
    return NamedSharding(mesh, PartitionSpec(*spec))


def rows_per_batch_multiple(mesh: Mesh) -> int:
    """A batch's rows must be a multiple of this to split evenly."""
    return mesh.shape["data"] * mesh.shape["fsdp"]


def put_global(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A host array that every process holds whole, placed as `sharding` (each process hands
    over only the pieces its own devices hold, so this also works across hosts)."""
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])
