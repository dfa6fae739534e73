"""Where a run's train state and batches live on the device mesh.

Parameters and their optimizer moments follow the logical-axis rules of `reft_jax.parallel`;
the step counter and scalar optimizer state are replicated; batch arrays of shape
(grad_accum, micro_batch, length) split their rows over the data x fsdp devices.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from reft_jax.errors import ReftError
from reft_jax.models import CausalLM
from reft_jax.parallel import (batch_sharding, make_mesh, param_shardings, put_global,
                               rows_per_batch_multiple, tree_shardings)
from reft_jax.train.state import TrainState


def train_state_shardings(model: CausalLM, state: TrainState, mesh: Mesh) -> TrainState:
    """A TrainState of shardings: parameters and their moments by the rules, the rest replicated."""
    params = param_shardings(model, mesh)
    return TrainState(step=NamedSharding(mesh, PartitionSpec()), params=params,
                      opt_state=tree_shardings(state.opt_state, state.params, params, mesh))


@dataclasses.dataclass(frozen=True)
class Placement:
    mesh: Mesh
    state: TrainState  # of NamedShardings
    rows: NamedSharding  # for (grad_accum, micro_batch, length) batch arrays

    @classmethod
    def for_run(cls, mesh_config, model: CausalLM, state: TrainState, micro_batch_rows: int,
                batch_key: str = "sft.batch_size") -> "Placement":
        """The mesh of `config.mesh`; micro-batches must split evenly over its batch axes."""
        mesh = make_mesh(mesh_config.data, mesh_config.fsdp, mesh_config.tensor)
        split = rows_per_batch_multiple(mesh)
        if micro_batch_rows % split:
            raise ReftError(f"config.{batch_key} gives micro-batches of {micro_batch_rows} rows, "
                            f"which do not split over the mesh's {split} data x fsdp devices")
        return cls(mesh, train_state_shardings(model, state, mesh), batch_sharding(mesh, 1))

    def rows_at(self, axis: int) -> NamedSharding:
        """Arrays whose `axis` holds batch rows, split over data x fsdp."""
        return batch_sharding(self.mesh, axis)

    def put_rows(self, arrays: dict[str, np.ndarray], axis: int = 0) -> dict[str, jax.Array]:
        """Host arrays that every process holds whole, rows (along `axis`) split over devices."""
        sharding = self.rows_at(axis)
        return {key: put_global(np.asarray(value), sharding) for key, value in arrays.items()}

    def put_state(self, state: TrainState) -> TrainState:
        return jax.device_put(state, self.state)

    def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """Host arrays that every process holds whole, each device given its rows."""
        return {key: put_global(value, self.rows) for key, value in batch.items()}
