"""configs/paper.py: every (model, dataset, style) cell resolves, passes validation and carries
the reference values. The expected values below are written by hand from REFT_SPEC.md
(../shared/docs), not read from the code under test."""

from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys

import pytest

from reft_jax.config_check import validate
from reft_jax.errors import ReftError
from reft_jax.stages import STAGES
from tests.conftest import REPO
from tests.tiny_hf import save_tiny


def load_config_file(name: str):
    spec = importlib.util.spec_from_file_location(f"config_{name}", REPO / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAPER = load_config_file("paper")

MODEL_IDS = {
    "codellama7b": "codellama/CodeLlama-7b-hf",
    "galactica6.7b": "facebook/galactica-6.7b",
    "qwen0.5b": "Qwen/Qwen2.5-0.5B-Instruct",
    "qwen1.5b": "Qwen/Qwen2.5-1.5B-Instruct",
}
# (dataset, style) -> (SFT epoch ReFT starts from, KL coefficient). REFT_SPEC.md: warm-up epoch
# 2, MathQA N-CoT 5, MathQA-numeric N-CoT 10; KL N-CoT 0.05, P-CoT 0.01, MathQA-numeric N-CoT 0.01.
PER_CELL = {
    ("gsm8k", "nl"): (2, 0.05),
    ("gsm8k", "program"): (2, 0.01),
    ("svamp", "nl"): (2, 0.05),
    ("svamp", "program"): (2, 0.01),
    ("mathqa", "nl"): (5, 0.05),
    ("mathqa", "program"): (2, 0.01),
    ("mathqa-numeric", "nl"): (10, 0.01),
    ("mathqa-numeric", "program"): (2, 0.01),  # no reference run: the general P-CoT values
}
# The same in every cell (REFT_SPEC.md: warm-up, PPO, inference and baseline settings).
SHARED = {
    "model.dtype": "bfloat16",  # "bf16"
    "sft.epochs": 40, "sft.learning_rate": 1e-5, "sft.warmup_ratio": 0.1,
    "sft.weight_decay": 0.0, "sft.adam_eps": 1e-8, "sft.grad_clip": 1.0,
    "sft.batch_size": 48, "sft.max_length": 1024,
    "reft.epochs": 300, "reft.rollout_batch": 32, "reft.samples_per_question": 1,
    "reft.temperature": 1.0, "reft.top_k": 0, "reft.top_p": 1.0,
    "reft.max_prompt_length": 300, "reft.max_length": 700,
    "reft.ppo_epochs": 2, "reft.minibatch_size": 0,  # one minibatch per PPO epoch
    "reft.learning_rate": 3e-7, "reft.adam_eps": 1e-8, "reft.weight_decay": 0.0,
    "reft.grad_clip": 1.0, "reft.gamma": 1.0, "reft.lam": 0.95, "reft.clip_ratio": 0.2,
    "reft.value_clip": 0.2, "reft.vf_coef": 5.0, "reft.partial_reward": 0.1,
    "reft.entropy_coef": 0.0, "reft.adaptive_kl": False, "reft.advantage": "gae",
    "reft.kl_estimator": "k1",
    "eval.vote_samples": 100, "eval.vote_temperature": 1.0, "eval.vote_top_k": 50,
    "rm.samples_per_question": 100, "rm.epochs": 3, "rm.learning_rate": 1e-6,
    "rm.batch_size": 24, "rm.warmup_ratio": 0.1, "rm.max_length": 700,
    "offline.max_correct": 10, "offline.epochs": 20,
}
# Micro-batching (the reference scripts' per-GPU rows: SFT 3 x 2 accumulation on 8 GPUs, PPO 4):
# (sft.grad_accum, reft.grad_accum); one GPU accumulates the 8 GPUs' micro-batches.
ACCUMULATION = {"codellama7b": (2, 1), "galactica6.7b": (2, 1), "qwen0.5b": (16, 8),
                "qwen1.5b": (16, 8)}
CELLS = [(m, d, s) for m in MODEL_IDS for (d, s) in PER_CELL]


def value(config, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("model,dataset,style", CELLS)
def test_every_cell_resolves_validates_and_carries_the_reference_values(model, dataset, style):
    config = PAPER.get_config(f"{model},{dataset},{style}")
    assert validate(config, STAGES) == ["sft", "reft", "eval"]
    warmup_epoch, kl_coef = PER_CELL[dataset, style]
    sft_accum, ppo_accum = ACCUMULATION[model]
    want = {**SHARED, "model.source": MODEL_IDS[model], "data.dataset": dataset,
            "data.style": style, "reft.warmup_epoch": warmup_epoch, "reft.kl_coef": kl_coef,
            "sft.grad_accum": sft_accum, "reft.grad_accum": ppo_accum}
    got = {key: value(config, key) for key in want}
    assert got == want, {k: (got[k], want[k]) for k in want if got[k] != want[k]}


def test_the_paper_models_shard_over_every_device_and_one_gpu_models_do_not():
    big = PAPER.get_config("galactica6.7b,svamp,nl")
    assert (big.mesh.data, big.mesh.fsdp, big.mesh.tensor) == (1, -1, 1)
    assert big.model.remat  # the planner: without it a 7B PPO update needs 113 GiB per device
    small = PAPER.get_config("qwen1.5b,svamp,nl")
    assert (small.mesh.data, small.mesh.fsdp, small.mesh.tensor) == (-1, 1, 1)


def test_cells_write_to_their_own_workdirs():
    workdirs = {PAPER.get_config(",".join(cell)).workdir for cell in CELLS}
    assert len(workdirs) == len(CELLS)


def test_the_paper_cell_is_the_design_entry_point_plus_layout():
    """configs/gsm8k.py keeps working and differs from its paper cell only in where and how
    the run is laid out (workdir, precision, mesh, micro-batches), not in the method."""
    design = load_config_file("gsm8k").get_config()
    validate(design, STAGES)
    cell = PAPER.get_config("codellama7b,gsm8k,nl")
    flat = lambda c: {".".join(k): v for k, v in _leaves(c.to_dict())}  # noqa: E731
    differing = {k for k, v in flat(design).items() if flat(cell)[k] != v}
    assert differing == {"workdir", "model.dtype", "model.remat", "mesh.data", "mesh.fsdp",
                         "sft.grad_accum"}


def _leaves(tree, prefix=()):
    for key, item in tree.items():
        if isinstance(item, dict):
            yield from _leaves(item, (*prefix, key))
        else:
            yield (*prefix, key), item


@pytest.mark.parametrize("cell,fragments", [
    ("llama7b,gsm8k,nl", ["unknown model 'llama7b'", "codellama7b, galactica6.7b, qwen0.5b"]),
    ("codellama7b,math,nl", ["unknown dataset 'math'", "gsm8k, svamp, mathqa, mathqa-numeric"]),
    ("codellama7b,gsm8k,python", ["unknown style 'python'", "nl, program"]),
    ("codellama7b,gsm8k", ["<model>,<dataset>,<style>"]),
    (None, ["needs a cell", "configs/paper.py:codellama7b,gsm8k,program"]),
])
def test_a_bad_cell_names_the_valid_choices(cell, fragments):
    with pytest.raises(ReftError) as raised:
        PAPER.get_config(cell) if cell is not None else PAPER.get_config()
    for fragment in fragments:
        assert fragment in str(raised.value)


def run_main(config_arg: str, *overrides: str):
    return subprocess.run([sys.executable, "-m", "reft_jax.main", f"--config={config_arg}",
                           *overrides], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_a_bad_cell_on_the_command_line_is_one_line():
    out = run_main("configs/paper.py:codellama7b,gsm8k,pcot")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip() == ("error: configs/paper.py:codellama7b,gsm8k,pcot: unknown style "
                                  "'pcot'; choose from nl, program")


def test_a_cell_runs_through_the_command_line(tmp_path):
    save_tiny(tmp_path, "llama")
    out = run_main("configs/paper.py:qwen0.5b,svamp,program", "--config.stages=check",
                   f"--config.model.source={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "compute bfloat16" in out.stdout and "next-token candidates" in out.stdout


def test_the_cell_table_covers_every_combination():
    assert set(CELLS) == set(itertools.product(PAPER.MODELS, PAPER.DATASETS, PAPER.STYLES))
