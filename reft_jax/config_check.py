"""Every check on config values that ml_collections' type locking cannot express, in one place.

`RULES` holds one line per range (counts, lengths, probabilities, rates) and `CHOICES` one per
enumerated string; `RELATIONS` the few checks between keys. `validate` runs them all before any
stage starts and raises a `ReftError` that names the first bad key and its value, e.g.
``config.reft.top_p=2 must be in (0, 1]``. tests/test_config_check.py checks that every number in
`default_config()` is covered here, or listed in `UNCHECKED` with the reason.
"""

from __future__ import annotations

import pathlib

from reft_jax.errors import ReftError

# Ranges: ">= a", "> a", or an interval "[a, b]" / "(a, b]" / "[a, b)".
_COUNTS = ("epochs", "batch_size", "grad_accum", "keep_checkpoints")
_STEPS = ("save_every_steps", "stop_after_step")  # 0 = off
_ADAMW = {"learning_rate": ">= 0", "weight_decay": ">= 0", "adam_eps": "> 0", "grad_clip": ">= 0",
          "warmup_ratio": "[0, 1]"}


def _section(name: str, rules: dict[str, str], counts=(), steps=(), adamw=()) -> dict[str, str]:
    table = {f"{name}.{k}": ">= 1" for k in counts}
    table.update({f"{name}.{k}": ">= 0" for k in steps})
    table.update({f"{name}.{k}": _ADAMW[k] for k in adamw})
    table.update({f"{name}.{k}": v for k, v in rules.items()})
    return table


RULES: dict[str, str] = {
    "distributed.num_processes": ">= 0",
    "distributed.process_id": ">= -1",
    "distributed.heartbeat_timeout_s": ">= 1",
    "data.validation_fraction": "[0, 1)",
    "data.max_train_examples": ">= 0",
    **_section("scratch", {}, ("hidden_size", "num_layers", "num_heads", "intermediate_size",
                               "max_positions")),
    **_section("sft", {"max_length": ">= 2", "eval_every_epochs": ">= 1"}, _COUNTS, _STEPS, _ADAMW),
    **_section("reft", {
        "warmup_epoch": ">= 1", "rollout_batch": ">= 1", "samples_per_question": ">= 1",
        "ppo_epochs": ">= 1", "temperature": ">= 0", "top_k": ">= 0", "top_p": "(0, 1]",
        "max_prompt_length": ">= 1", "max_length": ">= 2", "minibatch_size": ">= 0",
        "kl_coef": ">= 0", "entropy_coef": ">= 0", "partial_reward": "[0, 1]", "vf_coef": ">= 0",
        "gamma": "[0, 1]", "lam": "[0, 1]", "clip_ratio": "> 0", "value_clip": "> 0",
        "kl_target": "> 0", "kl_horizon": "> 0", "warmup_min_accuracy": "[0, 1]",
    }, ("epochs", "grad_accum", "keep_checkpoints"), _STEPS,
        ("learning_rate", "weight_decay", "adam_eps", "grad_clip")),
    **_section("eval", {
        "max_new_tokens": ">= 1", "vote_samples": ">= 1", "vote_temperature": ">= 0",
        "vote_top_k": ">= 0", "program_timeout": "> 0", "max_examples": ">= 0",
    }, ("batch_size",)),
    **_section("rm", {
        "samples_per_question": ">= 1", "temperature": ">= 0", "top_k": ">= 0",
        "max_new_tokens": ">= 1", "max_length": ">= 2",
    }, _COUNTS, _STEPS, _ADAMW),
    **_section("offline", {}, ("samples_per_question", "max_correct", "epochs")),
}

CHOICES: dict[str, tuple] = {
    "model.dtype": ("float32", "bfloat16"),
    "model.param_dtype": ("float32", "bfloat16"),
    "model.remat_policy": ("full", "dots"),
    "data.style": ("nl", "program"),
    "data.answer_type": ("", "numeric", "choice"),
    "reft.kl_estimator": ("k1", "k3"),
    "reft.advantage": ("gae", "grpo", "rloo"),
    "reft.ref_dtype": ("", "float32", "bfloat16"),
    "reft.kv_cache_dtype": ("", "float32", "bfloat16"),
    "reft.sampler_dtype": ("", "float32", "bfloat16"),
    "reft.reward": ("answer", "process"),
    "eval.split": ("test", "validation", "train"),
}

# (keys, test, what must hold): checked after every single key is.
RELATIONS = [
    (("reft.max_prompt_length", "reft.max_length"), lambda p, m: p < m, "{0} < {1}"),
    (("sft.batch_size", "sft.grad_accum"), lambda b, a: b % a == 0, "{0} divisible by {1}"),
    (("rm.batch_size", "rm.grad_accum"), lambda b, a: b % a == 0, "{0} divisible by {1}"),
    (("scratch.hidden_size", "scratch.num_heads"), lambda h, n: h % n == 0, "{0} divisible by {1}"),
]

# Numbers no rule above covers, and why.
UNCHECKED = {
    "seed": "any integer",
    "mesh.data": "make_mesh checks the mesh against the devices",
    "mesh.fsdp": "make_mesh checks the mesh against the devices",
    "mesh.tensor": "make_mesh checks the mesh against the devices",
}

# Stages that evaluate on the test split when they end (eval: when eval.split is "test").
TESTED_AT_THE_END = ("sft", "reft", "online_sl")


def _get(config, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


def _has(config, dotted: str) -> bool:
    try:
        _get(config, dotted)
    except (KeyError, AttributeError):
        return False
    return True


def _holds(value, rule: str) -> bool:
    if rule.startswith((">=", ">")):
        bound = float(rule.lstrip(">= "))
        return value >= bound if rule.startswith(">=") else value > bound
    lo, hi = (float(x) for x in rule[1:-1].split(","))
    above = value >= lo if rule[0] == "[" else value > lo
    below = value <= hi if rule[-1] == "]" else value < hi
    return above and below


def _describe(rule: str) -> str:
    return rule if rule.startswith(">") else f"in {rule}"


def check_values(config) -> None:
    """Every range, choice and relation above; keys a config does not have are skipped."""
    for key, rule in RULES.items():
        if _has(config, key):
            value = _get(config, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _holds(value, rule):
                raise ReftError(f"config.{key}={value!r} must be {_describe(rule)}")
    for key, allowed in CHOICES.items():
        if _has(config, key) and _get(config, key) not in allowed:
            raise ReftError(f"config.{key}={_get(config, key)!r} is not one of {allowed}")
    for keys, test, what in RELATIONS:
        if all(_has(config, k) for k in keys):
            values = [_get(config, k) for k in keys]
            if not test(*values):
                shown = ", ".join(f"config.{k}={v!r}" for k, v in zip(keys, values))
                raise ReftError(f"{shown}: needs {what.format(*(f'config.{k}' for k in keys))}")
    r = config.reft
    if r.advantage in ("grpo", "rloo") and r.samples_per_question < 2:
        raise ReftError(f"config.reft.advantage={r.advantage!r} compares samples of a question: "
                        f"config.reft.samples_per_question={r.samples_per_question} must be >= 2")


def check_data(config, names: list[str]) -> None:
    """The data files exist and the source has the splits the stages will read, so a missing
    test split fails now rather than after hours of training."""
    from reft_jax.data.loading import NAMES  # noqa: PLC0415 - data is host code, imported late
    from reft_jax.data.own_data import FILE_HINT, available_splits, is_hub, no_split

    d = config.data
    for role in ("train", "test", "validation"):
        explicit = str(d.get(f"{role}_file", "") or "")
        if explicit and not pathlib.Path(explicit).is_file():
            raise ReftError(f"config.data.{role}_file={explicit!r} is not a file")
    source = str(d.dataset)
    if source in NAMES or is_hub(source):
        return  # named datasets have train and test; a hub dataset tells only when loaded
    if not pathlib.Path(source).exists():
        raise ReftError(f"config.data.dataset={source!r} is neither a known name "
                        f"({', '.join(NAMES)}) nor an existing file or folder")
    evaluates = "eval" in names and str(config.eval.split)
    needed = {}
    if set(names) - {"check", "eval"} or evaluates in ("train", "validation"):
        needed["train"] = d.train_split
    if set(names) & set(TESTED_AT_THE_END) or evaluates == "test":
        needed["test"] = d.test_split
    splits = available_splits(source)
    for role, split in needed.items():
        if not str(d.get(f"{role}_file", "") or "") and split not in splits:
            hint = FILE_HINT if pathlib.Path(source).is_file() else ""
            raise ReftError(f"config.data.{role}_split: " + str(no_split(source, split, splits, hint)))


def validate(config, stages) -> list[str]:
    """Return the stage names in order; raise ReftError naming the first bad key."""
    from reft_jax.parallel import make_mesh  # noqa: PLC0415 - imports jax

    names = [s.strip() for s in str(config.stages).split(",") if s.strip()]
    if not names:
        raise ReftError(f"config.stages is empty; choose from {', '.join(stages)}")
    for name in names:
        if name not in stages:
            raise ReftError(f"config.stages: unknown stage {name!r}; known: {', '.join(stages)}")
    check_values(config)
    warmup = str(config.reft.warmup_checkpoint)
    if warmup and not pathlib.Path(warmup).exists():
        raise ReftError(f"config.reft.warmup_checkpoint={warmup!r} does not exist; give an SFT epoch "
                        "folder (<workdir>/sft/epoch_<k>) or leave it empty to use reft.warmup_epoch")
    check_data(config, names)
    make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)  # fits these devices?
    return names
