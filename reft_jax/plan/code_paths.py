"""Trace the formulations the target accelerator runs, though the planner compiles on a CPU.

The layers pick some formulations by backend (`reft_jax.models.layers.on_cpu`): on a CPU a
chunked attention, a remat policy that keeps the weight products, the hand-written decode
kernel; elsewhere XLA's `dot_product_attention` and, without `model.remat`, nothing
recomputed. Planning for a GPU or TPU on this CPU must trace the latter, so while a plan for
one is lowered, every module of the package that asks `on_cpu()` is told False.
"""

from __future__ import annotations

import contextlib
import sys
from unittest import mock

from reft_jax.models import layers


@contextlib.contextmanager
def code_paths_of(platform: str):
    """Within the block, the package's layers trace as on `platform` ("cpu", "gpu", "tpu")."""
    if platform == "cpu":
        yield
        return
    users = [module for name, module in list(sys.modules.items())
             if name.startswith("reft_jax.") and getattr(module, "on_cpu", None) is layers.on_cpu]
    with contextlib.ExitStack() as stack:
        for module in users:
            stack.enter_context(mock.patch.object(module, "on_cpu", lambda: False))
        stack.enter_context(mock.patch.object(layers, "decode_attention_supported",
                                              lambda k: False))
        yield
