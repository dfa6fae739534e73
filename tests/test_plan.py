"""The memory planner (`python -m reft_jax.plan`) on tiny Llama shapes: only a config.json, no
weights. Each run is a child process, which asks XLA for 8 fake CPU devices before JAX starts."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.tiny_hf import hf_config

TITLES = ("SFT step", "PPO sample (prefill + decode)", "PPO no-grad pass", "PPO update")
COLUMNS = ("args", "outputs", "temps", "aliased", "resident", "total")
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2)
BIG = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4)
# The paper's config, shrunk: 16 x 64 SFT batches, 8 rollouts of 16 + 32 tokens.
SHRUNK = ["--config.sft.batch_size=16", "--config.sft.max_length=64",
          "--config.reft.rollout_batch=8", "--config.reft.max_prompt_length=16",
          "--config.reft.max_length=48"]
ROW = re.compile(r"^(?P<title>.+?)\s{2,}(?P<batch>\S.*?)" + r"\s+([\d.]+)" * 6 + r"\s+(yes|NO)$")


def shape_folder(tmp_path, name: str, **sizes):
    """A model folder with nothing but config.json: all the planner may read."""
    folder = tmp_path / name
    hf_config("llama", max_position_embeddings=128, **sizes).save_pretrained(folder)
    return folder


def plan(folder, *args, kind: str = "cpu") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "reft_jax.plan", "--config=configs/gsm8k.py",
               f"--config.model.source={folder}", "--devices=8", f"--kind={kind}", *SHRUNK, *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def tables(out: str) -> list[dict[str, dict]]:
    """Every table printed: {step title: {column: MiB, "fits": bool}}."""
    found, scale = [], 1.0
    for line in out.splitlines():
        if line.startswith("per device, "):
            scale = 1024.0 if line.split()[2] == "GiB" else 1.0
            found.append({})
        elif found and (m := ROW.match(line)):
            numbers = [float(x) * scale for x in m.groups()[2:8]]
            found[-1][m["title"]] = {**dict(zip(COLUMNS, numbers)), "fits": m.groups()[8] == "yes"}
    return found


@pytest.fixture(scope="module")
def small_plan(tmp_path_factory):
    result = plan(shape_folder(tmp_path_factory.mktemp("small"), "small", **SMALL))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_every_step_has_its_memory_and_a_verdict(small_plan):
    assert "devices: 8 fake CPU devices, mesh data=8 fsdp=1 tensor=1" in small_plan
    [table] = tables(small_plan)
    assert tuple(table) == TITLES
    for title, row in table.items():
        assert row["total"] > 0, title
        assert row["total"] == pytest.approx(row["args"] + row["outputs"] - row["aliased"]
                                             + row["temps"] + row["resident"], abs=0.02), title
        assert row["fits"], title  # kilobytes against this machine's memory
    assert "fits: every step within" in small_plan
    assert "XLA's CPU compiler planned these numbers" in small_plan
    # the SFT step and the update donate their train state: its outputs reuse the arguments
    assert table["SFT step"]["aliased"] > 0 and table["PPO update"]["aliased"] > 0


@pytest.mark.slow
def test_a_bigger_model_needs_more_memory_in_every_step(small_plan, tmp_path):
    result = plan(shape_folder(tmp_path, "big", **BIG))
    assert result.returncode == 0, result.stderr[-3000:]
    [small], [big] = tables(small_plan), tables(result.stdout)
    for title in TITLES:
        assert big[title]["total"] > small[title]["total"], title
        assert big[title]["args"] > small[title]["args"], title


@pytest.mark.slow
def test_fsdp_splits_the_parameters_and_keeps_activations_split_by_rows(small_plan, tmp_path):
    result = plan(shape_folder(tmp_path, "small", **SMALL), "--config.mesh.data=1",
                  "--config.mesh.fsdp=8", "--steps=sft,update")
    assert result.returncode == 0, result.stderr[-3000:]
    [replicated], [split] = tables(small_plan), tables(result.stdout)
    assert tuple(split) == ("SFT step", "PPO update")
    for title in split:
        # the train state (parameters and Adam moments) is most of the arguments: 1/8 of it
        assert split[title]["args"] < 0.3 * replicated[title]["args"], title
        # the rows stay split over the devices, so no device holds every row's activations
        assert split[title]["temps"] < 1.5 * replicated[title]["temps"], title


@pytest.mark.slow
def test_a_plan_that_does_not_fit_names_the_settings_that_make_it_fit(tmp_path):
    small = shape_folder(tmp_path, "small", **SMALL)
    result = plan(small, "--steps=sft", "--margin=0.99999", kind="v5e")  # a budget of ~170 kB
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    first, *rest = tables(out)
    assert not first["SFT step"]["fits"] and "does not fit within" in out
    assert "trying changes for the steps that do not fit" in out
    assert re.search(r"fsdp over all devices \(--config.mesh.data=1 --config.mesh.fsdp=-1\): "
                     r"largest failing total [\d.]+ MiB -> [\d.]+ MiB, kept", out)
    assert rest and rest[-1]["SFT step"]["total"] < first["SFT step"]["total"]


def test_a_bad_kind_names_the_choices():
    result = subprocess.run([sys.executable, "-m", "reft_jax.plan", "--config=configs/gsm8k.py",
                             "--kind=h100"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--kind='h100' is not one of: h100-80g, h200, a100-80g, a100-40g, v4, v5e, v5p, cpu" \
        in result.stderr
    assert "Traceback" not in result.stderr
