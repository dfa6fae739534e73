"""Shared pieces of the benchmarks: the model pair on the same weights, GSM8K texts, device peaks.

By default the benchmarks read the shared SmolLM2 GGUF and GSM8K from ../shared (or from
$REFT_SHARED). `--model` takes a GGUF file, a Hugging Face folder with weights, or a folder
with only config.json and a tokenizer: then both sides get the same random weights of that
architecture, which is what a GPU machine that cannot receive the checkpoint measures with
(speed does not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("REFT_SHARED", REPO.parent / "shared"))
GGUF = SHARED / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
GSM8K_TEST = SHARED / "data" / "gsm8k" / "test.jsonl"
GSM8K_TRAIN = SHARED / "data" / "gsm8k" / "train.jsonl"
# Dense bf16 tensor-core peak of the SXM parts by NVIDIA's datasheets (H100 and H200 share it).
SPEC_BF16_FLOPS = {"H100": 989.4e12, "H200": 989.4e12}


def parse_args(description: str, **extra) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default=str(GGUF),
                        help="GGUF file, HF folder, or a folder with only config.json + tokenizer "
                             "(random weights)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    for name, (default, help_text) in extra.items():
        parser.add_argument(f"--{name}", type=type(default), default=default, help=help_text)
    return parser.parse_args()


def require(*paths: pathlib.Path):
    for path in paths:
        if not path.exists():
            sys.exit(f"{path} is missing: benchmarks read the model and data from ../shared "
                     "(or $REFT_SHARED)")


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def synchronize():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def load_pair(source: str, dtype: str = "float32"):
    """(our model, tokenizer, transformers model on torch_device()) on the same weights.

    `dtype` is our compute dtype (parameters stay float32); transformers' model is float32 and
    the benchmark runs it under autocast for bfloat16.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from reft_jax.models import load_pretrained

    path = pathlib.Path(source)
    require(path)
    if path.is_file():  # GGUF: both sides de-quantise the same file
        model, tok = load_pretrained(path, dtype=dtype, param_dtype="float32")
        hf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                        dtype=torch.float32)
    elif any(path.glob("*.safetensors")):
        model, tok = load_pretrained(path, dtype=dtype, param_dtype="float32")
        hf_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    else:  # architecture only: random weights, saved once so that both load the same ones
        torch.manual_seed(0)
        hf_model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path),
                                                    dtype=torch.float32)
        folder = tempfile.mkdtemp(prefix="bench_weights_")
        hf_model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(path).save_pretrained(folder)
        model, tok = load_pretrained(folder, dtype=dtype, param_dtype="float32")
    return model, tok, hf_model.to(torch_device())


def describe_model(model) -> str:
    cfg = model.config
    return (f"{cfg.num_params / 1e6:.0f}M parameters, {cfg.num_layers} layers, hidden "
            f"{cfg.hidden_size}, vocab {cfg.vocab_size}")


def gsm8k_prompts(n: int) -> list[str]:
    require(GSM8K_TEST)
    lines = GSM8K_TEST.read_text().splitlines()[:n]
    return ["Question:\n" + json.loads(x)["question"].strip() + "\nAnswer reasoning:\n" for x in lines]


def cpu_model() -> str:
    """The CPU's model name as lscpu prints it: ratios move with the CPU, so every result names it."""
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown CPU"
    line = next((x for x in out.splitlines() if x.startswith("Model name:")), "")
    return line.split(":", 1)[1].strip() if line else "unknown CPU"


def on_gpu() -> bool:
    import jax

    return jax.default_backend() == "gpu"


def measured_peak_flops(dtype: str = "float32",
                        shape: tuple[int, int, int] | None = None) -> float:
    """FLOP/s of a large matmul under XLA on this device: the compute bound we quote. `shape`
    (m, k, n) times a model's own product instead of a square one."""
    import jax
    import jax.numpy as jnp

    (m, k, n), repeats = _matmul_shape(shape)
    a, b = jnp.ones((m, k), dtype), jnp.ones((k, n), dtype)
    mm = jax.jit(lambda x, y: x @ y)
    mm(a, b).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        out = mm(a, b)
    out.block_until_ready()
    return 2 * m * k * n * repeats / (time.perf_counter() - start)


def _matmul_shape(shape):
    size, repeats = (8192, 20) if on_gpu() else (2048, 5)
    return (shape or (size, size, size)), repeats


def torch_peak_flops(dtype: str = "float32", shape: tuple[int, int, int] | None = None) -> float:
    """FLOP/s of the same matmul under torch on torch_device(): the reference's compute bound."""
    import torch

    (m, k, n), repeats = _matmul_shape(shape)
    kind, device = getattr(torch, dtype), torch_device()
    a = torch.ones((m, k), dtype=kind, device=device)
    b = torch.ones((k, n), dtype=kind, device=device)
    a @ b
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        out = a @ b
    synchronize()
    del out
    return 2 * m * k * n * repeats / (time.perf_counter() - start)


def measured_bandwidth() -> float:
    """Bytes/s read plus written by a large device copy under XLA: the memory bound we quote."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((256 * 1024 * 1024,), jnp.float32)  # 1 GiB
    bump = jax.jit(lambda x: x + 1)
    bump(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(10):
        out = bump(a)
    out.block_until_ready()
    return 2 * a.nbytes * 10 / (time.perf_counter() - start)


def spec_bf16_peak() -> float | None:
    import jax

    kind = jax.devices()[0].device_kind
    return next((v for k, v in SPEC_BF16_FLOPS.items() if k in kind), None)
