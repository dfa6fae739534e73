"""Your own data: a folder of split files, explicit files per split, any table (jsonl, json,
parquet, csv, arrow), a `datasets` save_to_disk folder or a Hugging Face hub dataset, with its
columns mapped to question, answer, reasoning and options (README "Your own data").

Splits (`available_splits`): a named dataset has train and test; a single file is the train split
and nothing else; a folder has one file per split (``train.jsonl``, ``test.parquet``,
``validation.csv``...), or is a `datasets` folder with the splits it was saved with; a hub dataset
has the splits the hub gives it. Asking a source for a split it does not have is a `DataError`
naming the source and the split, never another split's records.

Rows become `Example`s in `own_rows.py`, through `Fields` (the ``config.data.*_field`` keys).

Plain host code; `datasets` is imported only for the sources that need it.
"""

from __future__ import annotations

import pathlib
from typing import Iterable

from reft_jax.data.jsonio import read_json_array, read_jsonl
from reft_jax.data.mwp import parse_record as parse_mwp_record, style_of
from reft_jax.data.own_rows import Fields, rows_to_examples
from reft_jax.data.records import NL, DataError, Example, check_style

HUB_PREFIX = "hub:"
ROLES = ("train", "test", "validation")
TABLE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".arrow")
_DATASETS_MARKERS = ("dataset_dict.json", "state.json")  # what save_to_disk writes


# ----------------------------------------------------------------------------- sources


def is_hub(source) -> bool:
    return str(source).startswith(HUB_PREFIX)


def is_datasets_folder(path: pathlib.Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in _DATASETS_MARKERS)


def split_files(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """{split: file} of a folder holding one table per split (``<split>.<suffix>``)."""
    found: dict[str, pathlib.Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in TABLE_SUFFIXES:
            if path.stem in found:
                raise DataError(f"{folder}: two files for the {path.stem!r} split "
                                f"({found[path.stem].name}, {path.name}); keep one")
            found[path.stem] = path
    return found


def available_splits(source: str | pathlib.Path) -> tuple[str, ...] | None:
    """The splits a local source has (reading no records); None for a hub dataset (unknown
    without the network). Named datasets are not handled here (see loading.NAMES)."""
    if is_hub(source):
        return None
    path = pathlib.Path(source)
    if path.is_file():
        return ("train",)
    if is_datasets_folder(path):
        import datasets  # noqa: PLC0415 - optional and slow to import

        loaded = datasets.load_from_disk(str(path))
        return tuple(loaded.keys()) if isinstance(loaded, datasets.DatasetDict) else ("train",)
    if path.is_dir():
        return tuple(split_files(path))
    raise DataError(f"dataset {str(source)!r} does not exist")


def no_split(source, split: str, splits: Iterable[str] | None, hint: str = "") -> DataError:
    have = ", ".join(splits) if splits is not None else "unknown"
    return DataError(f"dataset {str(source)!r} has no {split!r} split (it has: {have or 'none'})"
                     + (f"; {hint}" if hint else ""))


FILE_HINT = ("a single file is the train split only: put train.jsonl and test.jsonl in one folder "
             "and give the folder, or set config.data.test_file")


def load_source(source: str | pathlib.Path, split: str, style: str = NL,
                fields: Fields | None = None, hub_config: str = "") -> list[Example]:
    """The examples of one split of a folder, a file (split "train" only), a `datasets` folder
    or ``hub:<id>`` (any id or local path `datasets.load_dataset` takes)."""
    check_style(style)
    fields = fields if fields is not None else Fields()
    if is_hub(source):
        return _hub_split(str(source)[len(HUB_PREFIX):], split, style, fields, hub_config)
    path = pathlib.Path(source)
    if not path.exists():
        raise DataError(f"dataset {str(source)!r} does not exist")
    if path.is_file():
        if split != "train":
            raise no_split(source, split, ("train",), FILE_HINT)
        return load_table(path, "train", style, fields)
    if is_datasets_folder(path):
        import datasets  # noqa: PLC0415

        loaded = datasets.load_from_disk(str(path))
        if not isinstance(loaded, datasets.DatasetDict):
            loaded = datasets.DatasetDict({"train": loaded})
        if split not in loaded:
            raise no_split(source, split, tuple(loaded.keys()))
        rows = ((f"{path}[{split}] row {i}", dict(row)) for i, row in enumerate(loaded[split]))
        return rows_to_examples(rows, path.name, split, style, fields)
    files = split_files(path)
    if split not in files:
        raise no_split(source, split, tuple(files),
                       "a folder holds one file per split (train.jsonl, test.parquet, ...); a "
                       "hub dataset's downloaded files read as hub:<folder>")
    return load_table(files[split], split, style, fields, name=path.name)


def _hub_split(name: str, split: str, style: str, fields: Fields, config: str) -> list[Example]:
    import datasets  # noqa: PLC0415

    try:
        ds = datasets.load_dataset(name, config or None, split=split)
    except ValueError as e:  # datasets: 'Unknown split "x". Should be one of [...]'
        if "split" not in str(e).lower():
            raise DataError(f"dataset 'hub:{name}': {e}") from None
        raise DataError(f"dataset 'hub:{name}' has no {split!r} split ({_one_line(e)})") from None
    except (FileNotFoundError, ConnectionError, OSError) as e:
        raise DataError(f"dataset 'hub:{name}' could not be loaded: {_one_line(e)}") from None
    local = pathlib.Path(name)
    label = local.name if local.exists() else name.rstrip("/").replace("/", "_")
    rows = ((f"hub:{name}[{split}] row {i}", dict(row)) for i, row in enumerate(ds))
    return rows_to_examples(rows, label, split, style, fields)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def load_table(path: pathlib.Path, split: str, style: str = NL, fields: Fields | None = None,
               name: str | None = None) -> list[Example]:
    """One table file as one split. An mwp_ReFT JSON array (records with ``item_id``) keeps its
    own format; every other table goes through `fields`."""
    fields = fields if fields is not None else Fields()
    name = name if name is not None else path.stem
    if path.suffix == ".jsonl":
        rows = ((f"{path}:{lineno}", obj) for lineno, obj in read_jsonl(path))
    elif path.suffix == ".json":
        records = read_json_array(path)
        if records and all("item_id" in r and "answer_value" in r for r in records):
            hint = style_of(path)
            return [parse_mwp_record(r, hint or (style if "answer_cot" in r else None),
                                     f"{path}: record {i}") for i, r in enumerate(records)]
        rows = ((f"{path}: record {i}", obj) for i, obj in enumerate(records))
    elif path.suffix in (".parquet", ".csv", ".arrow"):
        import datasets  # noqa: PLC0415

        reader = {".parquet": datasets.Dataset.from_parquet, ".csv": datasets.Dataset.from_csv,
                  ".arrow": datasets.Dataset.from_file}[path.suffix]
        rows = ((f"{path}: row {i}", dict(row)) for i, row in enumerate(reader(str(path))))
    else:
        raise DataError(f"{path}: unknown format (expected one of {', '.join(TABLE_SUFFIXES)})")
    return rows_to_examples(rows, name, split, style, fields)


# ----------------------------------------------------------------------------- a run's splits


def load_split(data, role: str) -> list[Example]:
    """The examples of one role ("train", "test" or "validation") of a run, from its config's
    data section: ``data.<role>_file`` when set, else ``data.dataset``'s ``<role>_split``."""
    from reft_jax.data.loading import load_examples  # noqa: PLC0415 - loading imports this module

    if role not in ROLES:
        raise DataError(f"role must be one of {ROLES}, got {role!r}")
    fields = Fields.from_config(data)
    explicit = str(data.get(f"{role}_file", "") or "")
    if explicit:
        path = pathlib.Path(explicit)
        if not path.is_file():
            raise DataError(f"config.data.{role}_file={explicit!r} is not a file")
        return load_table(path, role, str(data.style), fields)
    split = str(data.get(f"{role}_split", role) or role)
    return load_examples(data.dataset, split, style=str(data.style),
                         data_dir=str(data.data_dir) or None, fields=fields,
                         hub_config=str(data.get("hub_config", "")))


def has_split(data, role: str) -> bool | None:
    """Whether the run's data has this role's split (an explicit file counts); None when only
    loading can tell (a hub dataset)."""
    from reft_jax.data.loading import NAMES, SPLITS  # noqa: PLC0415

    if str(data.get(f"{role}_file", "") or ""):
        return True
    split = str(data.get(f"{role}_split", role) or role)
    if str(data.dataset) in NAMES:
        return split in SPLITS
    splits = available_splits(data.dataset)
    return None if splits is None else split in splits


def load_train_and_validation(data, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, validation) of a run. The validation split is the source's own when it has one
    (``data.validation_file``, a ``validation`` file in the folder, a hub split); otherwise a
    seeded ``data.validation_fraction`` of train, as the paper's setup carves it. Train keeps
    its first ``data.max_train_examples`` records first (0 = all)."""
    from reft_jax.data.batching import split_validation  # noqa: PLC0415

    train = load_split(data, "train")
    if data.max_train_examples > 0:
        train = train[:data.max_train_examples]
    own = has_split(data, "validation")
    if own is None:  # a hub dataset: ask it
        try:
            return train, load_split(data, "validation")
        except DataError as e:
            if "has no" not in str(e):
                raise
    elif own:
        if not train:
            raise DataError("the training split is empty")
        return train, load_split(data, "validation")
    return split_validation(train, data.validation_fraction, seed)
