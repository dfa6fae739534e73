"""Accelerator kinds the planner judges against: memory per device, and whose code paths run.

Sizes are what each device reports to JAX, in GiB (2^30 bytes). A plan fits when its total is
at most the size less a margin (default 10%) for what XLA's estimate leaves out: the runtime
and CUDA context, cuBLAS/cuDNN workspaces, fragmentation. On GPUs JAX takes only 75% of the
memory unless XLA_PYTHON_CLIENT_MEM_FRACTION says more (0.95 for a 7B run).
"""

from __future__ import annotations

import dataclasses
import os

from reft_jax.errors import ReftError

GIB = 2**30
DEFAULT_MARGIN = 0.10


@dataclasses.dataclass(frozen=True)
class Accelerator:
    name: str
    memory_gib: float  # per device
    platform: str  # "gpu", "tpu" or "cpu": which formulations the layers choose (`on_cpu`)


KINDS = {
    "h100-80g": Accelerator("NVIDIA H100 80GB", 79.6, "gpu"),
    "h200": Accelerator("NVIDIA H200 141GB", 140.4, "gpu"),
    "a100-80g": Accelerator("NVIDIA A100 80GB", 80.0, "gpu"),
    "a100-40g": Accelerator("NVIDIA A100 40GB", 40.0, "gpu"),
    "v4": Accelerator("TPU v4 chip", 32.0, "tpu"),
    "v5e": Accelerator("TPU v5e chip", 16.0, "tpu"),
    "v5p": Accelerator("TPU v5p chip", 95.0, "tpu"),
    "cpu": Accelerator("this machine's memory shared by the devices", 0.0, "cpu"),
}


def accelerator(kind: str, devices: int) -> Accelerator:
    """The named kind; "cpu" is this machine's memory split over the fake devices."""
    if kind not in KINDS:
        raise ReftError(f"--kind={kind!r} is not one of: {', '.join(KINDS)}")
    if kind == "cpu":
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
        return dataclasses.replace(KINDS[kind], memory_gib=round(total / devices, 1))
    return KINDS[kind]


def budget_bytes(device: Accelerator, margin: float) -> int:
    """What a plan may use per device: the memory less the margin."""
    if not 0.0 <= margin < 1.0:
        raise ReftError(f"--margin={margin} must be in [0, 1)")
    return int(device.memory_gib * (1.0 - margin) * GIB)
