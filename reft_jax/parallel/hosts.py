"""Runs over several processes (TPU pod hosts, multi-node GPUs): start-up, who writes, gathers.

Every process runs the same program on the same global batches and holds a slice of each
sharded array. Collectives (steps, gathers) are called by all processes; files are written by
process 0 alone.
"""

from __future__ import annotations

import atexit
from typing import Any

import jax
import numpy as np
from jax._src import distributed as jax_distributed
from jax.experimental import multihost_utils

from reft_jax.parallel import watchdog


def initialize(distributed) -> None:
    """`jax.distributed.initialize` when `config.distributed.enabled`. Empty fields are found
    by JAX itself on TPU pods and under SLURM; elsewhere give all three. Then a watchdog ends
    this process, naming the lost one, when another process is silent for
    `distributed.heartbeat_timeout_s` seconds (`watchdog`); JAX's own heartbeat, which aborts
    with a less clear message, gets twice that plus 30 s, as a backstop."""
    if not distributed.enabled:
        return
    jax.distributed.initialize(
        coordinator_address=distributed.coordinator_address or None,
        num_processes=distributed.num_processes if distributed.num_processes > 0 else None,
        process_id=distributed.process_id if distributed.process_id >= 0 else None,
        heartbeat_timeout_seconds=2 * distributed.heartbeat_timeout_s + 30)
    state = jax_distributed.global_state  # holds the client; orbax reads it the same way
    if state.num_processes > 1:
        watchdog.start(state.client, state.process_id, state.num_processes,
                       distributed.heartbeat_timeout_s)
        atexit.register(watchdog.closing)  # runs before JAX's own exit handler, registered earlier


def is_primary() -> bool:
    return jax.process_index() == 0


def to_host(tree: Any) -> Any:
    """Numpy copies of every array, gathered from all processes where it is split across them
    (a collective: every process must call it)."""
    def fetch(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(jax.device_get(leaf))
    return jax.tree.map(fetch, tree)


def sum_over_processes(values: np.ndarray) -> np.ndarray:
    """The element-wise sum of a same-shaped host array from every process."""
    if jax.process_count() == 1:
        return values
    gathered = multihost_utils.process_allgather(np.asarray(values))
    return np.asarray(gathered).sum(axis=0)


def any_process(flag: bool) -> bool:
    """True on every process if it is true on any (a collective)."""
    return bool(sum_over_processes(np.asarray([int(flag)], np.int32))[0])
