"""What `config.eval.models` and `config.eval.reward_model` name, resolved to folders before work.

A model name is one of the run's stage outputs under the workdir, or a local path:

- `sft`: the SFT epoch chosen on validation (`<workdir>/sft/best.json`);
- `sft_last`: the SFT run's last epoch folder (`<workdir>/sft/epoch_<largest>`);
- `reft`, `online_sl`, `offline_sl` (any stage that exports its best model the same way): the
  folder its `<workdir>/<stage>/best.json` names, else `<workdir>/<stage>/best`;
- anything else: a Hugging Face folder or a `.gguf` file that exists (hub ids are not fetched:
  an eval reads only what is on disk).

Everything is checked before a model is loaded, tokenizers included, so a typo or a reward model
of another tokenizer ends the run in one line instead of after an hour of sampling.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from reft_jax.errors import ReftError
from reft_jax.models.checkpoints import load_tokenizer
from reft_jax.models.reward_model import is_reward_model

STAGE_MODELS = ("sft", "reft", "online_sl", "offline_sl")
NAMED = ("sft", "sft_last", "reft", "online_sl", "offline_sl")


def stage_best(workdir: pathlib.Path, stage: str) -> pathlib.Path | None:
    """The model a stage chose on validation: best.json's folder, else best/; None if neither."""
    stage_dir = workdir / stage
    record = stage_dir / "best.json"
    if record.exists():
        return stage_dir / json.loads(record.read_text())["folder"]
    return stage_dir / "best" if (stage_dir / "best").exists() else None


def last_epoch(workdir: pathlib.Path) -> pathlib.Path | None:
    epochs = [p for p in (workdir / "sft").glob("epoch_*") if p.name[6:].isdigit()]
    return max(epochs, key=lambda p: int(p.name[6:])) if epochs else None


def resolve_model(name: str, workdir: pathlib.Path) -> pathlib.Path:
    """The folder or .gguf file of one `eval.models` entry; a ReftError naming it when missing."""
    if name == "sft_last":
        path = last_epoch(workdir)
        where = f"{workdir / 'sft'}/epoch_*"
    elif name in STAGE_MODELS:
        path = stage_best(workdir, name)
        where = f"{workdir / name}/best.json or {workdir / name}/best"
    else:
        path = pathlib.Path(name).expanduser()
        if not path.exists():
            raise ReftError(f"config.eval.models: {name!r} is neither a stage name "
                            f"({', '.join(NAMED)}) nor an existing model folder or .gguf file")
        return path
    if path is None or not path.exists():
        raise ReftError(f"config.eval.models: {name!r} has no model at {where}: run stages="
                        f"{name.removesuffix('_last')} first in this workdir, or drop it from "
                        "eval.models")
    return path


def model_names(config) -> list[str]:
    names = [n.strip() for n in str(config.eval.models).split(",") if n.strip()]
    if not names:
        raise ReftError("config.eval.models is empty; name at least one model (e.g. sft,reft)")
    if len(set(names)) != len(names):
        raise ReftError(f"config.eval.models={config.eval.models!r} names a model twice")
    return names


def resolve_reward_model(config) -> pathlib.Path | None:
    """`eval.reward_model`, or `<workdir>/rm/best` when it exists; None: no reranking."""
    given = str(config.eval.reward_model)
    default = pathlib.Path(config.workdir) / "rm" / "best"
    path = pathlib.Path(given).expanduser() if given else default
    if not path.exists():
        if given:
            raise ReftError(f"config.eval.reward_model={given!r} does not exist")
        return None
    if not is_reward_model(path):
        raise ReftError(f"config.eval.reward_model: {path} is not a reward model folder (it has no "
                        "classifier_head.safetensors); train one with stages=rm")
    return path


def same_tokenizer(a: Any, b: Any) -> bool:
    """Same vocabulary and EOS: ids mean the same text to both."""
    return a.get_vocab() == b.get_vocab() and a.eos_token_id == b.eos_token_id


def check_reward_model_tokenizer(reward_model: pathlib.Path,
                                 models: dict[str, pathlib.Path]) -> None:
    """A reward model scores token ids: it must share the tokenizer of every model it reranks."""
    rm_tokenizer = load_tokenizer(reward_model)
    for name, path in models.items():
        if not same_tokenizer(rm_tokenizer, load_tokenizer(path)):
            raise ReftError(f"the reward model {reward_model} has another tokenizer than the "
                            f"evaluated model {name!r} ({path}); train a reward model from that "
                            "model (stages=rm, rm.source) or set config.eval.reward_model")
