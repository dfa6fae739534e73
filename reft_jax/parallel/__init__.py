"""Placing arrays on a device mesh: data, FSDP and tensor parallelism by logical-axis rules."""

from reft_jax.parallel.mesh import (BATCH_AXES, LOGICAL_RULES, MESH_AXES, batch_sharding,
                                    logical_spec, make_mesh, param_shardings, put_global,
                                    rows_per_batch_multiple, tree_shardings)

__all__ = ["BATCH_AXES", "LOGICAL_RULES", "MESH_AXES", "batch_sharding", "logical_spec",
           "make_mesh", "param_shardings", "put_global", "rows_per_batch_multiple",
           "tree_shardings"]
