"""Per-device bytes: what XLA plans for one compiled program, and what other steps leave resident.

`memory_analysis()` of an SPMD program describes one device's share. A program needs its
arguments, outputs and temporaries at once, less the outputs written into donated arguments
(aliased). Arrays that another step keeps alive meanwhile (the frozen reference during the
update, the sampler's KV cache after a rollout) are not arguments of the program but occupy the
same device, so they are added as "resident".
"""

from __future__ import annotations

import dataclasses
import math

import jax


@dataclasses.dataclass(frozen=True)
class Memory:
    arguments: int
    outputs: int
    temporaries: int
    aliased: int
    resident: int = 0

    @classmethod
    def of(cls, compiled, resident: int = 0) -> "Memory":
        stats = compiled.memory_analysis()
        return cls(stats.argument_size_in_bytes, stats.output_size_in_bytes,
                   stats.temp_size_in_bytes, stats.alias_size_in_bytes, resident)

    @property
    def program(self) -> int:
        return self.arguments + self.outputs - self.aliased + self.temporaries

    @property
    def total(self) -> int:
        return self.program + self.resident


def bytes_per_device(tree) -> int:
    """Bytes one device holds of a pytree of ShapeDtypeStructs that carry shardings (the
    largest shard where shards differ)."""
    def one(leaf) -> int:
        shape = leaf.sharding.shard_shape(leaf.shape) if leaf.sharding is not None else leaf.shape
        return math.prod(shape) * leaf.dtype.itemsize
    return sum(one(leaf) for leaf in jax.tree.leaves(tree))


def with_shardings(tree, shardings):
    """ShapeDtypeStructs of `tree` (arrays or ShapeDtypeStructs) carrying `shardings`."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        tree, shardings)
