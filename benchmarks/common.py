"""Shared pieces of the benchmarks: the shared SmolLM2 checkpoint, GSM8K prompts, peak FLOP/s."""

from __future__ import annotations

import json
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GGUF = SHARED / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
GSM8K_TEST = SHARED / "data" / "gsm8k" / "test.jsonl"


def require_shared():
    for path in (GGUF, GSM8K_TEST):
        if not path.exists():
            sys.exit(f"{path} is missing: benchmarks read the model and data from ../shared")


def gsm8k_prompts(n: int) -> list[str]:
    lines = GSM8K_TEST.read_text().splitlines()[:n]
    return ["Question:\n" + json.loads(x)["question"].strip() + "\nAnswer reasoning:\n" for x in lines]


def measured_peak_flops(size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matmul under XLA on this machine: the compute bound we quote."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((size, size), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    mm(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        out = mm(a)
    out.block_until_ready()
    return 2 * size**3 * repeats / (time.perf_counter() - start)
