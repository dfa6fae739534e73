"""Hand-written CPU kernels, registered as XLA FFI custom calls, where XLA's own code is slow.

Each kernel is built from its C++ source on first use (`build.py`). Without a working compiler,
or with `REFT_JAX_CPU_KERNELS=0`, callers fall back to their pure-JAX formulation: same results,
slower. Kernels run on a single CPU device only, as the SPMD partitioner cannot split them.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp

from reft_jax.kernels.build import BuildError, load_library

_HERE = Path(__file__).parent
DECODE_ATTENTION = "reft_decode_attention"


@functools.cache
def _register_decode_attention() -> bool:
    if os.environ.get("REFT_JAX_CPU_KERNELS", "1") == "0":
        return False
    try:
        lib = load_library(_HERE / "decode_attention.cc")
    except (BuildError, OSError) as e:
        warnings.warn(f"CPU decode attention kernel unavailable, using XLA's: {e}", stacklevel=3)
        return False
    jax.ffi.register_ffi_target(DECODE_ATTENTION, jax.ffi.pycapsule(lib.ReftDecodeAttention),
                                platform="cpu")
    return True


def decode_attention_supported(k: jax.Array) -> bool:
    """Whether `decode_attention_kernel` can read this (B,K,S,D) cache: float32, head_dim 64
    or 128, on one CPU device, with the kernel built (its queries are always float32)."""
    return (jax.default_backend() == "cpu" and jax.device_count() == 1
            and k.dtype == jnp.float32 and k.shape[-1] in (64, 128)
            and _register_decode_attention())


def decode_attention_kernel(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """q (B,K,G,D) already scaled, k and v (B,K,S,D), mask (B,S) bool -> (B,K,G,D) float32."""
    out = jax.ShapeDtypeStruct(q.shape, jnp.float32)
    return jax.ffi.ffi_call(DECODE_ATTENTION, out)(q, k, v, mask.astype(bool))
