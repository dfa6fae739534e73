"""Checks on config values that ml_collections' type locking cannot express."""

from __future__ import annotations

import pathlib

from reft_jax.errors import ReftError
from reft_jax.parallel import make_mesh

CHOICES = {
    "data.style": ("nl", "program"),
    "model.dtype": ("float32", "bfloat16"),
    "model.param_dtype": ("float32", "bfloat16"),
}


def _get(config, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


def validate(config, stages) -> list[str]:
    """Return the stage names in order; raise ReftError naming the first bad key."""
    for key, allowed in CHOICES.items():
        value = _get(config, key)
        if value not in allowed:
            raise ReftError(f"config.{key}={value!r} is not one of {allowed}")
    names = [s.strip() for s in str(config.stages).split(",") if s.strip()]
    if not names:
        raise ReftError(f"config.stages is empty; choose from {', '.join(stages)}")
    for name in names:
        if name not in stages:
            raise ReftError(f"config.stages: unknown stage {name!r}; known: {', '.join(stages)}")
    for key in ("reft.partial_reward", "reft.top_p", "sft.learning_rate", "sft.warmup_ratio"):
        if _get(config, key) < 0:
            raise ReftError(f"config.{key} must be >= 0, got {_get(config, key)}")
    warmup = str(config.reft.warmup_checkpoint)
    if warmup and not pathlib.Path(warmup).exists():
        raise ReftError(f"config.reft.warmup_checkpoint={warmup!r} does not exist; give an SFT epoch "
                        "folder (<workdir>/sft/epoch_<k>) or leave it empty to use reft.warmup_epoch")
    for key in ("sft.batch_size", "sft.grad_accum", "sft.epochs", "sft.max_length"):
        if _get(config, key) < 1:
            raise ReftError(f"config.{key} must be >= 1, got {_get(config, key)}")
    make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)  # fits these devices?
    return names
