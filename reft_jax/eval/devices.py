"""Where an inference model lives: on the run's device mesh, parameters placed by logical axes.

Sampling with a mesh splits sample rows over its data x fsdp devices and reads each parameter
where its sharding puts it (FSDP / tensor parallel as in training); with one device nothing moves.
"""

from __future__ import annotations

import jax
from flax import nnx
from jax.sharding import Mesh

from reft_jax.parallel import make_mesh, param_shardings


def config_mesh(config) -> Mesh | None:
    """The mesh of `config.mesh`, or None on a single device (the sampler's plain path)."""
    if jax.device_count() == 1:
        return None
    return make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)


def place_model(model: nnx.Module, mesh: Mesh | None) -> nnx.Module:
    """The model with its parameters placed on the mesh by their logical axes (as loaded: None)."""
    if mesh is None:
        return model
    graphdef, params = nnx.split(model)
    placed = jax.device_put(nnx.to_pure_dict(params), param_shardings(model, mesh))
    nnx.replace_by_pure_dict(params, placed)
    return nnx.merge(graphdef, params)
