"""Compile a C++ source of this package into a shared library once per machine, and load it.

The library goes into a cache folder (`REFT_JAX_KERNEL_CACHE`, else `~/.cache/reft_jax/kernels`)
under a name hashed from the source, the flags, the jaxlib version and the CPU (it is built with
-march=native), so an edit, an upgrade or another machine rebuilds it. Builds land by an atomic
rename, so concurrent processes never load a half-written file.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import jax
import jaxlib

FLAGS = ("-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-std=c++17", "-shared", "-fPIC")


class BuildError(RuntimeError):
    pass


def cache_dir() -> Path:
    env = os.environ.get("REFT_JAX_KERNEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "reft_jax" / "kernels"


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f if line.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def library_path(source: Path) -> Path:
    digest = hashlib.sha256()
    for part in (source.read_bytes(), " ".join(FLAGS).encode(), jaxlib.__version__.encode(),
                 _cpu_signature().encode()):
        digest.update(part)
    return cache_dir() / f"{source.stem}-{digest.hexdigest()[:16]}.so"


def compile_library(source: Path) -> Path:
    """Build `source` unless a build of this exact source, flags and machine is cached."""
    target = library_path(source)
    if target.exists():
        return target
    compiler = os.environ.get("CXX", "g++")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    cmd = [compiler, *FLAGS, f"-I{jax.ffi.include_dir()}", str(source), "-o", tmp]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        os.unlink(tmp)
        raise BuildError(f"cannot run the C++ compiler {compiler!r}: {e}") from e
    if result.returncode != 0:
        os.unlink(tmp)
        raise BuildError(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    os.replace(tmp, target)
    return target


def load_library(source: Path) -> ctypes.CDLL:
    return ctypes.cdll.LoadLibrary(str(compile_library(source)))
