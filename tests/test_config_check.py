"""Config validation: every probability, count and length of `default_config()` is checked in
`config_check`, a bad value names its key, and a data source without a split a stage reads fails
before any work."""

from __future__ import annotations

import importlib.util
import json

import pytest

from reft_jax.config import default_config
from reft_jax.config_check import (CHOICES, RELATIONS, RULES, UNCHECKED, check_data, check_values,
                                   validate)
from reft_jax.errors import ReftError
from tests.conftest import REPO


def leaves(config, prefix=""):
    for key, value in config.items():
        if hasattr(value, "items"):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_every_rule_names_a_real_key():
    keys = dict(leaves(default_config()))
    named = set(RULES) | set(CHOICES) | set(UNCHECKED) | {k for ks, _, _ in RELATIONS for k in ks}
    assert sorted(named - set(keys)) == []


def test_every_number_in_the_config_is_checked_or_said_why_not():
    numbers = {k for k, v in leaves(default_config())
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    missing = sorted(numbers - set(RULES) - set(UNCHECKED))
    assert missing == [], f"add a range for these to config_check.RULES (or UNCHECKED): {missing}"


# Configs parameterised by a cell (`--config=configs/paper.py:<cell>`): one cell here; every
# cell is checked in test_paper_configs.py.
CELL = {"paper": ("codellama7b,gsm8k,program",)}


def test_defaults_and_shipped_configs_pass():
    check_values(default_config())
    for path in sorted((REPO / "configs").glob("*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        check_values(module.get_config(*CELL.get(path.stem, ())))


BAD = [
    ("reft.top_p", 2.0, "config.reft.top_p=2.0 must be in (0, 1]"),
    ("reft.top_p", 0.0, "config.reft.top_p=0.0 must be in (0, 1]"),
    ("reft.temperature", -0.5, "config.reft.temperature=-0.5 must be >= 0"),
    ("reft.top_k", -1, "config.reft.top_k=-1 must be >= 0"),
    ("reft.rollout_batch", 0, "config.reft.rollout_batch=0 must be >= 1"),
    ("reft.samples_per_question", 0, "config.reft.samples_per_question=0 must be >= 1"),
    ("reft.ppo_epochs", 0, "config.reft.ppo_epochs=0 must be >= 1"),
    ("reft.epochs", 0, "config.reft.epochs=0 must be >= 1"),
    ("reft.grad_accum", 0, "config.reft.grad_accum=0 must be >= 1"),
    ("reft.minibatch_size", -4, "config.reft.minibatch_size=-4 must be >= 0"),
    ("reft.kl_coef", -0.01, "config.reft.kl_coef=-0.01 must be >= 0"),
    ("reft.entropy_coef", -1.0, "config.reft.entropy_coef=-1.0 must be >= 0"),
    ("reft.partial_reward", -0.1, "config.reft.partial_reward=-0.1 must be in [0, 1]"),
    ("reft.gamma", 1.01, "config.reft.gamma=1.01 must be in [0, 1]"),
    ("reft.lam", -0.5, "config.reft.lam=-0.5 must be in [0, 1]"),
    ("reft.clip_ratio", 0.0, "config.reft.clip_ratio=0.0 must be > 0"),
    ("reft.value_clip", -0.2, "config.reft.value_clip=-0.2 must be > 0"),
    ("reft.kl_target", 0.0, "config.reft.kl_target=0.0 must be > 0"),
    ("reft.kl_horizon", 0, "config.reft.kl_horizon=0 must be > 0"),
    ("reft.adam_eps", 0.0, "config.reft.adam_eps=0.0 must be > 0"),
    ("sft.warmup_ratio", 1.5, "config.sft.warmup_ratio=1.5 must be in [0, 1]"),
    ("sft.batch_size", 0, "config.sft.batch_size=0 must be >= 1"),
    ("sft.max_length", 1, "config.sft.max_length=1 must be >= 2"),
    ("sft.keep_checkpoints", 0, "config.sft.keep_checkpoints=0 must be >= 1"),
    ("sft.save_every_steps", -1, "config.sft.save_every_steps=-1 must be >= 0"),
    ("sft.learning_rate", -1e-5, "config.sft.learning_rate=-1e-05 must be >= 0"),
    ("data.validation_fraction", 1.0, "config.data.validation_fraction=1.0 must be in [0, 1)"),
    ("data.max_train_examples", -1, "config.data.max_train_examples=-1 must be >= 0"),
    ("eval.program_timeout", 0.0, "config.eval.program_timeout=0.0 must be > 0"),
    ("eval.vote_samples", 0, "config.eval.vote_samples=0 must be >= 1"),
    ("eval.max_new_tokens", 0, "config.eval.max_new_tokens=0 must be >= 1"),
    ("rm.top_k", -2, "config.rm.top_k=-2 must be >= 0"),
    ("rm.grad_accum", 0, "config.rm.grad_accum=0 must be >= 1"),
    ("distributed.process_id", -2, "config.distributed.process_id=-2 must be >= -1"),
    ("reft.kl_estimator", "k2", "config.reft.kl_estimator='k2' is not one of ('k1', 'k3')"),
    ("reft.advantage", "ppo", "config.reft.advantage='ppo' is not one of ('gae', 'grpo', 'rloo')"),
    ("reft.ref_dtype", "float16", "config.reft.ref_dtype='float16' is not one of"),
    ("eval.split", "dev", "config.eval.split='dev' is not one of"),
    ("data.answer_type", "free", "config.data.answer_type='free' is not one of"),
    ("model.dtype", "float16", "config.model.dtype='float16' is not one of"),
]


def with_values(**dotted):
    c = default_config()
    for key, value in dotted.items():
        section, name = key.split("__")
        c[section][name] = value
    return c


@pytest.mark.parametrize("key, value, message", BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_a_bad_value_names_its_key(key, value, message):
    with pytest.raises(ReftError) as info:
        check_values(with_values(**{key.replace(".", "__"): value}))
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize("key, value", [
    ("reft.top_p", 1.0), ("reft.top_p", 1e-6), ("reft.temperature", 0.0), ("reft.gamma", 0.0),
    ("reft.gamma", 1.0), ("reft.lam", 1.0), ("reft.minibatch_size", 0), ("reft.kl_coef", 0.0),
    ("reft.partial_reward", 0.0), ("sft.grad_clip", 0.0), ("data.validation_fraction", 0.0),
    ("reft.ref_dtype", "bfloat16"), ("reft.advantage", "gae"), ("eval.split", "validation"),
])
def test_the_edges_of_each_range_are_accepted(key, value):
    check_values(with_values(**{key.replace(".", "__"): value}))


def test_relations_between_keys():
    with pytest.raises(ReftError, match=r"config.reft.max_prompt_length=700, config.reft.max_length="
                                        r"700: needs config.reft.max_prompt_length < config.reft.max_length"):
        check_values(with_values(reft__max_prompt_length=700))
    with pytest.raises(ReftError, match="config.sft.batch_size=6, config.sft.grad_accum=4: needs "
                                        "config.sft.batch_size divisible by config.sft.grad_accum"):
        check_values(with_values(sft__batch_size=6, sft__grad_accum=4))
    with pytest.raises(ReftError, match="config.reft.samples_per_question=1 must be >= 2"):
        check_values(with_values(reft__advantage="rloo"))
    check_values(with_values(reft__advantage="grpo", reft__samples_per_question=4))


def write_jsonl(path, n):
    rows = [{"question": f"q{i}?", "answer": f"s.\n#### {i}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_missing_test_split_fails_before_any_stage_runs(tmp_path):
    one_file = write_jsonl(tmp_path / "mine.jsonl", 4)
    c = default_config()
    c.data.dataset, c.stages = str(one_file), "sft"
    with pytest.raises(ReftError) as info:
        validate(c, {"sft": None, "eval": None, "check": None})
    message = str(info.value)
    assert message.startswith("config.data.test_split: dataset ") and str(one_file) in message
    assert "no 'test' split" in message and "config.data.test_file" in message
    c.data.test_file = str(write_jsonl(tmp_path / "held_out.jsonl", 2))
    assert validate(c, {"sft": None}) == ["sft"]
    # evaluating on the carved validation split needs no test split
    c = default_config()
    c.data.dataset, c.stages, c.eval.split = str(one_file), "eval", "validation"
    check_data(c, ["eval"])
    c.stages = "check"
    c.data.dataset = str(tmp_path / "absent")
    with pytest.raises(ReftError, match="config.data.dataset=.*absent.* neither a known name"):
        check_data(c, ["check"])


def test_a_folder_with_both_splits_and_explicit_files_pass(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", 4)
    c = default_config()
    c.data.dataset = str(folder)
    with pytest.raises(ReftError,
                       match="config.data.test_split: .*has no 'test' split \\(it has: train\\)"):
        check_data(c, ["sft"])
    write_jsonl(folder / "test.jsonl", 2)
    check_data(c, ["sft", "reft", "eval"])
    c.data.validation_file = str(tmp_path / "nope.jsonl")
    with pytest.raises(ReftError, match="config.data.validation_file=.*nope.jsonl' is not a file"):
        check_data(c, ["sft"])
