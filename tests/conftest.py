"""Shared test fixtures: paths into ../shared, skipped with a reason when absent."""

from __future__ import annotations

import os
import pathlib
import tempfile

import pytest

# One persistent XLA compilation cache for the session and the child processes it starts: many
# tests build the same small steps and samplers again (a stage run per test), and reading a
# compiled program back is much faster than compiling it anew on a 2-core machine.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(pathlib.Path(tempfile.gettempdir()) / "reft_jax_test_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GSM8K_DIR = SHARED / "data" / "gsm8k"
MWP_DIR = SHARED / "data" / "mwp_reft"
SMOLLM_GGUF = SHARED / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def require(path: pathlib.Path) -> pathlib.Path:
    """Skip the calling test when a file from ../shared is absent (a user's clone)."""
    if not path.exists():
        pytest.skip(f"{path} is absent: it comes from ../shared, beside the repository")
    return path


@pytest.fixture
def gsm8k_dir() -> pathlib.Path:
    return require(GSM8K_DIR)


@pytest.fixture
def mwp_dir() -> pathlib.Path:
    return require(MWP_DIR)


@pytest.fixture
def smollm_gguf() -> pathlib.Path:
    return require(SMOLLM_GGUF)
