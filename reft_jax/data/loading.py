"""``load_examples(source, split)``: a dataset by name and split, or a file by path.

Names resolve to files under ``data_dir`` (default: ``../shared/data`` beside the repository, i.e.
``<repo>/../shared/data``; pass ``data_dir`` explicitly anywhere else; no environment variable is
read):

| name | style | train | test |
|---|---|---|---|
| gsm8k | nl | gsm8k/train.jsonl | gsm8k/test.jsonl |
| gsm8k | program | programs built from gsm8k/train.jsonl (pcot_gsm8k) | same from test.jsonl |
| svamp, mathqa, mathqa-numeric | nl | mwp_reft/<name>_nl.json | mwp_reft/<name>_test_set.json |
| svamp, mathqa, mathqa-numeric | program | mwp_reft/<name>_python_sdp.json | mwp_reft/<name>_test_set.json |
| hub:gsm8k | nl | openai/gsm8k from the Hugging Face hub (network) | same |
| synthetic | nl/program | generated (synthetic.py, default settings) | same |

A path is read by its format: ``.jsonl`` GSM8K original, ``.json`` the mwp_ReFT array.
"""

from __future__ import annotations

import pathlib

from reft_jax.data.gsm8k import load_gsm8k_hub, load_gsm8k_jsonl
from reft_jax.data.mwp import load_mwp_json
from reft_jax.data.pcot_gsm8k import load_gsm8k_programs
from reft_jax.data.records import NL, PROGRAM, STYLES, DataError, Example
from reft_jax.data.synthetic import generate

SPLITS = ("train", "test")
MWP_NAMES = ("svamp", "mathqa", "mathqa-numeric")
NAMES = ("gsm8k", "hub:gsm8k", "synthetic", *MWP_NAMES)


def default_data_dir() -> pathlib.Path:
    """``<repo>/../shared/data``."""
    return pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


def load_examples(
    source: str | pathlib.Path,
    split: str | None = None,
    *,
    style: str = NL,
    data_dir: str | pathlib.Path | None = None,
) -> list[Example]:
    """Records of a named dataset split (``split`` default ``"train"``) or of a file."""
    if style not in STYLES:
        raise DataError(f"style must be one of {STYLES}, got {style!r}")
    name = str(source)
    if name not in NAMES:
        path = pathlib.Path(source)
        if not path.exists():
            raise DataError(f"dataset {name!r} is neither a known name ({', '.join(NAMES)}) nor an existing file")
        return load_file(path, style)
    split = split if split is not None else "train"
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    if name == "synthetic":
        return generate(split=split, style=style)
    if name == "hub:gsm8k":
        return load_gsm8k_hub(split)
    root = pathlib.Path(data_dir) if data_dir is not None else default_data_dir()
    if name == "gsm8k":
        return load_file(_existing(root / "gsm8k" / f"{split}.jsonl"), style)
    suffix = "test_set" if split == "test" else ("python_sdp" if style == PROGRAM else "nl")
    return load_mwp_json(_existing(root / "mwp_reft" / f"{name}_{suffix}.json"))


def load_file(path: pathlib.Path, style: str = NL) -> list[Example]:
    if path.suffix == ".jsonl":
        if style == PROGRAM:
            return load_gsm8k_programs(path)[0]
        return load_gsm8k_jsonl(path)
    if path.suffix == ".json":
        return load_mwp_json(path)
    raise DataError(f"{path}: unknown format (expected .jsonl GSM8K or .json mwp_ReFT)")


def _existing(path: pathlib.Path) -> pathlib.Path:
    if not path.exists():
        raise DataError(f"{path} does not exist (see SOURCE.md beside it for what is available)")
    return path
