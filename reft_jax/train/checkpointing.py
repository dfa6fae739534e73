"""Orbax checkpoints of a training run: the train state plus where the run stood.

`meta` (a JSON dict) records the data position and RNG so that running the same command again
continues exactly where the last checkpoint left off.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """Save every `save_every` steps (and whenever asked), keep the last `keep`."""

    def __init__(self, directory: str | pathlib.Path, keep: int, save_every: int):
        self.directory = pathlib.Path(directory).resolve()
        self.save_every = save_every
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 enable_async_checkpointing=False))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def due(self, step: int) -> bool:
        return self.save_every > 0 and step % self.save_every == 0

    def save(self, step: int, state: Any, meta: dict) -> None:
        if step in self.manager.all_steps():
            return
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
        self.manager.wait_until_finished()

    def restore(self, like_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """(state, meta) of `step` (default: the latest), shaped like `like_state`."""
        step = step if step is not None else self.latest_step()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like_state)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        return restored.state, dict(restored.meta)

    def close(self) -> None:
        self.manager.close()
