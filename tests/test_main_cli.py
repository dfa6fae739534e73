"""The command line: clear one-line errors for bad keys and values, honest stage reporting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.tiny_hf import save_tiny


def run_main(*args, timeout=300):
    cmd = [sys.executable, "-m", "reft_jax.main", "--config=configs/gsm8k.py", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(out, *fragments):
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_key_names_the_key():
    assert_one_line_error(run_main("--config.model.sourc=x"), "model.sourc", "source")


def test_wrong_type_names_the_key():
    assert_one_line_error(run_main("--config.sft.batch_size=abc"), "sft.batch_size", "abc")


def test_bad_choice_names_the_key():
    assert_one_line_error(run_main("--config.data.style=python"), "data.style", "nl")


def test_mesh_that_does_not_fit_the_devices_names_the_key():
    assert_one_line_error(run_main("--config.mesh.fsdp=3", "--config.stages=check"),
                          "config.mesh", "'fsdp': 3")


def test_unknown_stage_lists_the_known_ones():
    assert_one_line_error(run_main("--config.stages=sft,bogus"), "bogus", "check")


def test_missing_config_file():
    out = subprocess.run([sys.executable, "-m", "reft_jax.main", "--config=configs/nope.py"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert_one_line_error(out, "configs/nope.py")


def test_stage_not_built_fails_before_doing_anything():
    from reft_jax.stages import STAGES

    unbuilt = [name for name, fn in STAGES.items() if fn is None]
    if not unbuilt:
        pytest.skip("every stage is built")
    out = run_main(f"--config.stages=check,{unbuilt[0]}", "--config.model.source=/nonexistent")
    assert_one_line_error(out, unbuilt[0], "not built yet")
    assert "== stage check ==" not in out.stdout


def test_check_stage_loads_a_model(tmp_path):
    save_tiny(tmp_path, "llama")
    out = run_main("--config.stages=check", f"--config.model.source={tmp_path}")
    assert out.returncode == 0, out.stderr
    assert "llama" in out.stdout and "next-token candidates" in out.stdout


def test_missing_model_is_one_line():
    out = run_main("--config.stages=check", "--config.model.source=/nonexistent/model")
    assert_one_line_error(out, "/nonexistent/model", "does not exist")


def test_out_of_range_value_names_the_key():
    assert_one_line_error(run_main("--config.reft.top_p=2", "--config.stages=check"),
                          "config.reft.top_p=2.0 must be in (0, 1]")


def test_a_dataset_without_a_test_split_fails_before_any_stage(tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text('{"question": "q?", "answer": "s.\\n#### 1"}\n')
    out = run_main("--config.stages=check,sft", f"--config.data.dataset={data}",
                   "--config.model.source=/nonexistent/model")
    assert_one_line_error(out, "config.data.test_split", str(data), "no 'test' split",
                          "config.data.test_file")
    assert "== stage" not in out.stdout
