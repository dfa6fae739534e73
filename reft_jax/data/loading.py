"""``load_examples(source, split)``: a named dataset's split, or a split of your own data.

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
| price | nl/program | the quickstart's price task (price_task.py): 1200 generated | 500 |

Anything else is your own data (``own_data.py``): a folder with one file per split, a
`datasets` folder, ``hub:<id>``, or one file, which is the train split only (a file read with
``split=None`` is read whole, whatever it holds). A split the source does not have is an error
naming both.
"""

from __future__ import annotations

import pathlib

from reft_jax.data.gsm8k import load_gsm8k_hub, load_gsm8k_jsonl
from reft_jax.data.mwp import load_mwp_json
from reft_jax.data.own_data import is_hub, load_source, load_table, no_split
from reft_jax.data.own_rows import Fields
from reft_jax.data.pcot_gsm8k import load_gsm8k_programs
from reft_jax.data.records import NL, PROGRAM, DataError, Example, check_style
from reft_jax.data.price_task import generate_price
from reft_jax.data.synthetic import generate

SPLITS = ("train", "test")
MWP_NAMES = ("svamp", "mathqa", "mathqa-numeric")
NAMES = ("gsm8k", "hub:gsm8k", "synthetic", "price", *MWP_NAMES)
PRICE_SIZES = {"train": 1200, "test": 500}  # the quickstart: 1000 train + 200 validation


def default_data_dir() -> pathlib.Path:
    """``<repo>/../shared/data``."""
    return pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


def load_examples(
    source: str | pathlib.Path,
    split: str | None = None,
    *,
    style: str = NL,
    data_dir: str | pathlib.Path | None = None,
    fields: Fields | None = None,
    hub_config: str = "",
) -> list[Example]:
    """Records of a split (default ``"train"``) of a named dataset or of your own data;
    ``fields`` maps the columns of your own tables (named datasets keep their formats)."""
    check_style(style)
    name = str(source)
    if name not in NAMES:
        path = pathlib.Path(source)
        if not is_hub(name) and not path.exists():
            raise DataError(f"dataset {name!r} is neither a known name ({', '.join(NAMES)}) nor an "
                            "existing file or folder")
        if split is None and path.is_file():
            return load_table(path, "", style, fields)
        return load_source(source, split if split is not None else "train", style, fields,
                           hub_config)
    split = split if split is not None else "train"
    if split not in SPLITS:
        raise no_split(name, split, SPLITS)
    if name == "synthetic":
        return generate(split=split, style=style)
    if name == "price":
        return generate_price(PRICE_SIZES[split], split=split, style=style)
    if name == "hub:gsm8k":
        return load_gsm8k_hub(split)
    root = pathlib.Path(data_dir) if data_dir is not None else default_data_dir()
    if name == "gsm8k":
        return load_file(_existing(root / "gsm8k" / f"{split}.jsonl"), style)
    suffix = "test_set" if split == "test" else ("python_sdp" if style == PROGRAM else "nl")
    return load_mwp_json(_existing(root / "mwp_reft" / f"{name}_{suffix}.json"))


def load_file(path: pathlib.Path, style: str = NL) -> list[Example]:
    """A shipped file in its own format: GSM8K ``.jsonl`` or the mwp_ReFT ``.json`` array."""
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
