"""Your own data: a folder of split files, explicit files per split, any table (jsonl, json,
parquet, csv, arrow), a `datasets` save_to_disk folder or a Hugging Face hub dataset, with its
columns mapped to question, answer, reasoning and options (README "Your own data").

Splits (`available_splits`): a named dataset has train and test; a single file is the train split
and nothing else; a folder has one file per split (``train.jsonl``, ``test.parquet``,
``validation.csv``...), or is a `datasets` folder with the splits it was saved with; a hub dataset
has the splits the hub gives it. Asking a source for a split it does not have is a `DataError`
naming the source and the split, never another split's records.

Rows become `Example`s through `Fields` (from the ``config.data.*_field`` keys):

- question: the question column (a string).
- answer: a number (``72``, ``"1,000"``, ``"$18.50"``, ``"\\frac{3}{4}"``, ``"\\boxed{5}"``), an
  option letter for multiple choice, or GSM8K's ``"<reasoning>\\n#### 72"`` (the reasoning then
  becomes the N-CoT, and for P-CoT a program is built from its calculator annotations).
- cot: the reasoning column (N-CoT text, or a P-CoT program when the run's style is program).
- choices: the options of a multiple-choice question: a list (``["A)21", "B)22"]`` or
  ``["21", "22"]``), a ``{"label": [..], "text": [..]}`` dict, or one string
  ``"a ) 21 , b ) 22"``; they are appended to the question as MathQA writes them, and an answer
  that is an option's text becomes its letter.

Plain host code; `datasets` is imported only for the sources that need it.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import warnings
from typing import Any, Iterable

from reft_jax.data.gsm8k import split_solution
from reft_jax.data.jsonio import read_json_array, read_jsonl
from reft_jax.data.mwp import parse_record as parse_mwp_record, style_of
from reft_jax.data.numbers import parse_number
from reft_jax.data.pcot_gsm8k import gsm8k_program
from reft_jax.data.records import CHOICE, NL, NUMERIC, PROGRAM, DataError, Example, check_style

HUB_PREFIX = "hub:"
ROLES = ("train", "test", "validation")
TABLE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".arrow")
LETTERS = "abcde"
_DATASETS_MARKERS = ("dataset_dict.json", "state.json")  # what save_to_disk writes


@dataclasses.dataclass(frozen=True)
class Fields:
    """Which column holds what; "" for cot/choices means the table has none."""

    question: str = "question"
    answer: str = "answer"
    cot: str = ""
    choices: str = ""
    answer_type: str = ""  # NUMERIC, CHOICE, or "": CHOICE when `choices` is set
    drop_unparsable: bool = False  # leave out rows whose gold answer does not parse (counted)

    def __post_init__(self):
        if self.answer_type not in ("", NUMERIC, CHOICE):
            raise DataError(f"config.data.answer_type={self.answer_type!r} is not one of "
                            f"('', {NUMERIC!r}, {CHOICE!r})")
        if not self.question or not self.answer:
            raise DataError("config.data.question_field and config.data.answer_field must name columns")

    @property
    def kind(self) -> str:
        return self.answer_type or (CHOICE if self.choices else NUMERIC)

    @classmethod
    def from_config(cls, data) -> Fields:
        return cls(str(data.question_field), str(data.answer_field), str(data.cot_field),
                   str(data.choices_field), str(data.answer_type), bool(data.drop_unparsable))


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


# ----------------------------------------------------------------------------- rows


def rows_to_examples(rows: Iterable[tuple[str, dict]], name: str, split: str, style: str,
                     fields: Fields) -> list[Example]:
    """Examples ``<name>_<split>_<i>`` (``<name>_<i>`` when split is "") from (where, row) pairs;
    see the module docstring."""
    kept, dropped, total = [], [], 0
    for i, (where, row) in enumerate(rows):
        total += 1
        try:
            ex_id = f"{name}_{split}_{i}" if split else f"{name}_{i}"
            ex = row_to_example(row, ex_id, name, style, fields, where)
        except _Unparsable as e:
            if not fields.drop_unparsable:
                raise DataError(str(e)) from None
            dropped.append(str(e))
            continue
        if ex is not None:
            kept.append(ex)
    label = f"{name} [{split}]" if split else name
    if dropped:
        warnings.warn(f"{label}: left out {len(dropped)} of {total} rows whose gold "
                      f"answer is not a number (first: {dropped[0]})", stacklevel=2)
    programless = total - len(dropped) - len(kept)
    if programless:
        warnings.warn(f"{label}: {programless} of {total} GSM8K-style rows have no "
                      f"program that reproduces the gold answer; kept {len(kept)}", stacklevel=2)
    return kept


class _Unparsable(DataError):
    """A gold answer that is not a number (or not an option); dropped when asked to."""


def row_to_example(row: dict, ex_id: str, dataset: str, style: str, fields: Fields,
                   where: str) -> Example | None:
    question = _text(row, fields.question, where)
    answer = _value(row, fields.answer, where)
    cot = _text(row, fields.cot, where) if fields.cot else None
    gsm8k_solution = None
    if fields.kind == NUMERIC and "####" in answer:
        try:
            head, gold = split_solution(answer, f"{where}: field {fields.answer!r}")
        except DataError as e:
            raise _Unparsable(str(e)) from None
        gsm8k_solution, answer = answer, gold
        if cot is None:
            cot = head
    if fields.kind == CHOICE:
        options = _options(row[fields.choices] if fields.choices else None, fields.choices, where)
        if options:
            question = question.rstrip() + "\n" + " , ".join(
                f"{letter} ) {text}" for letter, text in zip(LETTERS, options))
        gold = _letter(answer, options, fields.answer, where)
    else:
        gold = plain_number(answer)
        if gold is None:
            raise _Unparsable(f"{where}: field {fields.answer!r} {answer!r} is not a number")
    if cot is not None and style == PROGRAM and gsm8k_solution is not None and not fields.cot:
        cot = gsm8k_program(question, gsm8k_solution, float(parse_number(gold)))
        if cot is None:
            return None  # no verified program: counted by the caller
    return Example(id=ex_id, question=question, answer=gold, answer_type=fields.kind, cot=cot,
                   style=style if cot is not None else None, dataset=dataset)


def _missing(row: dict, name: str, where: str) -> DataError:
    has = ", ".join(sorted(map(str, row))) or "none"
    return DataError(f"{where}: missing field {name!r} (has: {has})")


def _text(row: dict, name: str, where: str) -> str:
    if name not in row:
        raise _missing(row, name, where)
    value = row[name]
    if not isinstance(value, str):
        raise DataError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    return value


def _value(row: dict, name: str, where: str) -> str:
    """An answer cell as text: strings as they are, numbers written plainly."""
    if name not in row:
        raise _missing(row, name, where)
    value = row[name]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{where}: field {name!r} must be a string or a number, got "
                        f"{type(value).__name__}")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_BOXED = re.compile(r"\\boxed\s*\{")
_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]+?)\s*\}\s*\{\s*([^{}]+?)\s*\}")
_DROP = re.compile(r"\\[!,;: ]|\\\$|\\%|\^\s*\{?\\circ\}?|\\text\s*\{[^{}]*\}|\\mbox\s*\{[^{}]*\}")


def _unbox(text: str) -> str:
    m = _BOXED.search(text)
    if not m:
        return text
    depth, start = 1, m.end()
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return text


def plain_number(text: str) -> str | None:
    """A gold answer as the plain string the reward parses (``"1000"``, ``"-3/4"``, ``"18.50"``),
    or None. Takes what people and MATH-style datasets write: commas, ``$``, ``%``, ``\\boxed{}``,
    ``\\frac{a}{b}``, ``^\\circ``, ``\\text{units}``, surrounding ``$...$``."""
    text = _unbox(str(text).strip()).strip().strip("$").strip()
    text = _DROP.sub("", _FRAC.sub(r"\1/\2", text)).replace("{", "").replace("}", "").strip()
    text = text.replace(",", "").replace("$", "")
    if parse_number(text) is None:
        return None
    return text.rstrip(".%").strip().replace(" ", "")


_OPTION_PREFIX = re.compile(r"^\s*\(?\s*([a-eA-E])\s*[).:]\s*")


def _options(cell: Any, name: str, where: str) -> list[str]:
    """The option texts of a multiple-choice cell, letter prefixes removed."""
    if cell is None:
        return []
    if isinstance(cell, dict) and "text" in cell:
        cell = cell["text"]
    if isinstance(cell, str):
        parts = re.split(r"\s*,\s*(?=[a-eA-E]\s*\))", cell.strip())
        cell = parts if len(parts) > 1 else [cell]
    if not isinstance(cell, (list, tuple)) or not all(isinstance(o, (str, int, float)) for o in cell):
        raise DataError(f"{where}: field {name!r} must be a list of options, got {type(cell).__name__}")
    if not 2 <= len(cell) <= len(LETTERS):
        raise DataError(f"{where}: field {name!r} has {len(cell)} options; 2 to {len(LETTERS)} are "
                        "supported (letters a-e)")
    return [_OPTION_PREFIX.sub("", str(o)).strip() for o in cell]


def _letter(answer: str, options: list[str], name: str, where: str) -> str:
    m = re.fullmatch(r"\s*\(?\s*([a-eA-E])\s*\)?\s*", answer)
    if m:
        return m.group(1).lower()
    stripped = _OPTION_PREFIX.sub("", answer).strip()
    if stripped in options:
        return LETTERS[options.index(stripped)]
    raise _Unparsable(f"{where}: field {name!r} {answer!r} is neither an option letter a-e nor "
                      "one of the options")


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
