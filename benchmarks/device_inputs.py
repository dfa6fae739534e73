"""Everything the GPU benchmarks need that a device machine lacks, in one folder to carry there.

A device machine gets the repository but not `../shared`, nor the network. This writes, under
`--out` (default `.device/`, ignored by git):
  models/smollm2-135m/   config.json and tokenizer of the shared SmolLM2 GGUF (no weights)
  models/qwen2.5-0.5b/   Qwen2.5-0.5B's published architecture with SmolLM2's tokenizer (its
                         ids stay below 49152, and the 151936-row embedding is what costs)
  shared/data/gsm8k/     the shared GSM8K files the benchmarks read ($REFT_SHARED points here)
  wheels/                the few packages the device image lacks, for Python 3.12
Then `benchmarks/device_suite.sh` on the device machine runs the benchmarks on random weights
of those architectures, both sides the same weights (see `benchmarks/common.py:load_pair`).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys

from benchmarks.common import GGUF, SHARED, require

# Qwen2.5-0.5B's config.json as published (Qwen/Qwen2.5-0.5B), token ids set to the tokenizer's.
QWEN25_05B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
    "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06,
    "tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": 32768,
    "max_window_layers": 24, "attention_dropout": 0.0, "initializer_range": 0.02,
    "torch_dtype": "bfloat16",
}
# What the device image lacks of requirements.txt (its package list: .library/device/KINDS.md).
WHEELS = ("ml_collections", "datasets", "dill", "multiprocess", "gguf", "tensorboardX")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def write_models(out: pathlib.Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    require(GGUF)
    smol, qwen = out / "models" / "smollm2-135m", out / "models" / "qwen2.5-0.5b"
    tok = AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    AutoConfig.from_pretrained(GGUF.parent, gguf_file=GGUF.name).save_pretrained(smol)
    for folder in (smol, qwen):
        tok.save_pretrained(folder)
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}
    (qwen / "config.json").write_text(json.dumps({**QWEN25_05B, **ids}, indent=2))


def copy_data(out: pathlib.Path) -> None:
    source = SHARED / "data" / "gsm8k"
    require(source / "test.jsonl", source / "train.jsonl")
    target = out / "shared" / "data" / "gsm8k"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("test.jsonl", "train.jsonl"):
        shutil.copyfile(source / name, target / name)


def download_wheels(out: pathlib.Path) -> None:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                    *platforms, "-d", str(out / "wheels"), *WHEELS], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=".device", help="folder to write (carry it)")
    parser.add_argument("--no-wheels", action="store_true", help="skip the package download")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    write_models(out)
    copy_data(out)
    if not args.no_wheels:
        download_wheels(out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({size / 2**20:.1f} MiB): carry it, then run "
          f"`bash benchmarks/device_suite.sh {out}` there")


if __name__ == "__main__":
    main()
