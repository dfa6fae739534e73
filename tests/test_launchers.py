"""The launchers in launch/: --help, the commands --dry-run prints for every process (read back
with shlex, so quoting is checked too), and the local launcher run for real."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

LAUNCHERS = ("gpu_node.sh", "slurm.sh", "local.sh", "tpu_pod.sh")
CELL = "configs/paper.py:codellama7b,gsm8k,program"
SPACED = "--config.workdir=/shared runs/it's here"  # a space and a quote in one override
PROCESS_LINE = re.compile(r"^process (\d+) \((.*?)\): (.*)$")


def launch(name, *args, env=None, timeout=60):
    return subprocess.run(["bash", str(REPO / "launch" / name), *args], cwd=REPO, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, timeout=timeout)


def processes(stdout: str) -> dict[int, tuple[str, list[str]]]:
    """process id -> (where, the command's words) from the --dry-run lines."""
    found = {}
    for line in stdout.splitlines():
        if match := PROCESS_LINE.match(line):
            found[int(match[1])] = (match[2], shlex.split(match[3]))
    return found


def flag(words: list[str], name: str) -> str:
    values = [w.split("=", 1)[1] for w in words if w.startswith(f"--config.{name}=")]
    assert len(values) == 1, (name, words)
    return values[0]


@pytest.mark.parametrize("name", LAUNCHERS)
def test_help_prints_the_usage(name):
    out = launch(name, "--help")
    assert out.returncode == 0, out.stderr
    assert f"launch/{name}" in out.stdout and "--dry-run" in out.stdout
    assert not out.stdout.startswith("!")  # the shebang is not part of it


@pytest.mark.parametrize("name", LAUNCHERS)
def test_an_unknown_flag_is_named(name):
    out = launch(name, "--nodes=3", CELL)
    assert out.returncode == 2
    assert "unknown flag --nodes" in out.stderr and f"launch/{name}" in out.stderr


def test_local_dry_run_gives_each_process_its_id_and_one_coordinator():
    out = launch("local.sh", "--processes=3", "--devices-per-process=2", "--port=23456",
                 "--dry-run", CELL, "--config.stages=check", SPACED)
    assert out.returncode == 0, out.stderr
    found = processes(out.stdout)
    assert sorted(found) == [0, 1, 2]
    for pid, (where, words) in found.items():
        assert where == "localhost"
        assert words[0] == "JAX_PLATFORMS=cpu" and words[1].startswith("XLA_FLAGS=")
        assert words[1].endswith("--xla_force_host_platform_device_count=2")
        assert words[3:6] == ["-m", "reft_jax.main", f"--config={CELL}"]
        assert flag(words, "distributed.enabled") == "True"
        assert flag(words, "distributed.coordinator_address") == "localhost:23456"
        assert flag(words, "distributed.num_processes") == "3"
        assert flag(words, "distributed.process_id") == str(pid)
        assert "--config.stages=check" in words and SPACED in words


def test_gpu_node_dry_run_is_one_process_on_the_chosen_gpus():
    out = launch("gpu_node.sh", "--gpus=0,1,2,3", "--dry-run", CELL, SPACED,
                 env={"PYTHON": "/opt/venv/bin/python"})
    assert out.returncode == 0, out.stderr
    found = processes(out.stdout)
    assert list(found) == [0]
    where, words = found[0]
    assert where.endswith("GPUs 0,1,2,3")
    assert words == ["CUDA_VISIBLE_DEVICES=0,1,2,3", "/opt/venv/bin/python", "-m", "reft_jax.main",
                     f"--config={CELL}", SPACED]
    assert launch("gpu_node.sh", "--gpus=all", "--dry-run", CELL).returncode == 2


@pytest.fixture
def slurm_env(tmp_path):
    """A two-node allocation as SLURM describes it, with an `scontrol` that expands its list."""
    (tmp_path / "scontrol").write_text(
        '#!/bin/sh\n[ "$1 $2 $3" = "show hostnames gpu[07-08]" ] || exit 1\n'
        'echo gpu07\necho gpu08\n')
    (tmp_path / "scontrol").chmod(0o755)
    return {"PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_JOB_ID": "5000",
            "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_GPUS_ON_NODE": "4"}


def launch_line(stdout: str) -> list[str]:
    lines = [line for line in stdout.splitlines() if line.startswith("launch: ")]
    assert len(lines) == 1, stdout
    return shlex.split(lines[0].removeprefix("launch: "))


def test_slurm_dry_run_one_process_per_node(slurm_env):
    out = launch("slurm.sh", "--dry-run", CELL, SPACED, env=slurm_env)
    assert out.returncode == 0, out.stderr
    srun = launch_line(out.stdout)
    assert srun[:5] == ["srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1",
                        "--kill-on-bad-exit=1"]
    found = processes(out.stdout)
    assert {pid: where for pid, (where, _) in found.items()} == {0: "gpu07", 1: "gpu08"}
    port = 61440 + 5000 % 4096  # what JAX itself would pick for this job
    for pid, (_, words) in found.items():
        assert flag(words, "distributed.coordinator_address") == f"gpu07:{port}"
        assert flag(words, "distributed.num_processes") == "2"
        assert flag(words, "distributed.process_id") == str(pid)
        assert words[words.index("-m") + 2] == f"--config={CELL}" and SPACED in words


def test_slurm_dry_run_one_process_per_gpu(slurm_env):
    out = launch("slurm.sh", "--per=gpu", "--port=4567", "--dry-run", CELL, env=slurm_env)
    assert out.returncode == 0, out.stderr
    assert launch_line(out.stdout)[1:4] == ["--nodes=2", "--ntasks=8", "--ntasks-per-node=4"]
    found = processes(out.stdout)
    assert sorted(found) == list(range(8))
    assert found[5][0] == "gpu08, GPU 1"
    for pid, (_, words) in found.items():
        assert flag(words, "distributed.coordinator_address") == "gpu07:4567"
        assert flag(words, "distributed.num_processes") == "8"
        assert flag(words, "distributed.process_id") == str(pid)


@pytest.mark.parametrize("per,keeps_local_id", [("node", False), ("gpu", True)])
def test_the_srun_task_command_takes_its_id_from_slurm(slurm_env, tmp_path, per, keeps_local_id):
    """What srun starts on each task, run here with a task's SLURM variables and a stand-in
    python that prints what it got."""
    fake = tmp_path / "fake_python"
    fake.write_text('#!/bin/sh\necho "local=${SLURM_LOCALID:-unset}"\nfor a; do echo "$a"; done\n')
    fake.chmod(0o755)
    out = launch("slurm.sh", f"--per={per}", "--dry-run", CELL, SPACED,
                 env={**slurm_env, "PYTHON": str(fake)})
    srun = launch_line(out.stdout)
    task = srun[srun.index("bash"):]
    ran = subprocess.run(task, env={**os.environ, "SLURM_PROCID": "1", "SLURM_LOCALID": "1"},
                         capture_output=True, text=True, timeout=30)
    lines = ran.stdout.splitlines()
    assert lines[0] == ("local=1" if keeps_local_id else "local=unset")
    assert lines[-1] == "--config.distributed.process_id=1" and SPACED in lines


def test_slurm_outside_an_allocation_says_so():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    out = subprocess.run(["bash", "launch/slurm.sh", "--dry-run", CELL], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "not inside a SLURM allocation" in out.stderr


def test_tpu_pod_dry_run_runs_one_command_on_every_host():
    out = launch("tpu_pod.sh", "--dry-run", "run", "my-v4-32", "us-central2-b", CELL, SPACED)
    assert out.returncode == 0, out.stderr
    gcloud = launch_line(out.stdout)
    assert gcloud[:9] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-v4-32", "--zone",
                          "us-central2-b", "--worker=all"]
    remote = shlex.split(gcloud[gcloud.index("--command") + 1])
    assert remote[:3] == ["cd", "~/reft_jax", "&&"]
    assert remote[3:] == ["python", "-m", "reft_jax.main", f"--config={CELL}",
                          "--config.distributed.enabled=True", SPACED]
    every_host = [line for line in out.stdout.splitlines() if line.startswith("every host")]
    assert len(every_host) == 1 and "process ids from JAX" in every_host[0]


def test_tpu_pod_dry_run_setup_copies_and_installs():
    out = launch("tpu_pod.sh", "--dry-run", "setup", "my-v4-32", "us-central2-b")
    assert out.returncode == 0, out.stderr
    commands = [shlex.split(line.removeprefix("launch: ")) for line in out.stdout.splitlines()
                if line.startswith("launch: ")]
    assert [c[:2] for c in commands] == [["git", "-C"], ["gcloud", "compute"],
                                         ["gcloud", "compute"]]
    assert "scp" in commands[1] and "--worker=all" in commands[2]
    assert '"jax[tpu]"' in commands[2][-1]


def test_local_launcher_waits_for_every_process(tmp_path):
    fake = tmp_path / "fake_python"
    fake.write_text('#!/bin/sh\nsleep 0.2\nfor a; do echo "$a"; done\n')
    fake.chmod(0o755)
    out = launch("local.sh", "--processes=2", "--port=1", CELL, env={"PYTHON": str(fake)})
    assert out.returncode == 0, out.stderr
    for pid in (0, 1):
        assert f"[process {pid}] --config.distributed.process_id={pid}" in out.stdout


def test_local_launcher_stops_the_others_when_one_process_fails(tmp_path):
    fake = tmp_path / "fake_python"
    fake.write_text('#!/bin/sh\nfor a; do case $a in --config.distributed.process_id=*) '
                    'id=${a#*=};; esac; done\n'
                    'if [ "$id" = 1 ]; then echo "process one gives up"; exit 3; fi\n'
                    'exec sleep 60\n')
    fake.chmod(0o755)
    start = time.monotonic()
    out = launch("local.sh", "--processes=3", "--port=1", CELL, env={"PYTHON": str(fake)})
    assert time.monotonic() - start < 20  # the sleeping processes were stopped
    assert out.returncode == 3
    assert "[process 1] process one gives up" in out.stdout
    assert "error: process 1 exited with status 3; stopping the others" in out.stderr


def test_local_launcher_processes_join_one_system():
    """Two real processes of one CPU device each: a mesh of 2 data-parallel devices passes
    validation only if the two joined one distributed system; a process that got past it
    reaches the check stage, whose missing model ends it with status 2, and the launcher with
    it. (Loading a tiny model as well takes 20-40 s on this 2-core machine.)"""
    out = launch("local.sh", "--processes=2",  # the launcher finds a free port
                 "configs/paper.py:qwen0.5b,gsm8k,nl", "--config.stages=check",
                 "--config.model.source=/nonexistent/model", "--config.mesh.data=2",
                 env={"PYTHON": sys.executable}, timeout=120)
    assert "needs 2 devices" not in out.stdout, out.stdout[-3000:]
    # The first process to fail stops the other, which may not have printed as far yet.
    assert re.search(r"^\[process [01]\] == stage check ==$", out.stdout, re.M), out.stdout[-3000:]
    assert re.search(r"^\[process [01]\] error: model source '/nonexistent/model' does not exist",
                     out.stdout, re.M), out.stdout[-3000:]
    assert out.returncode == 2
    assert re.search(r"^error: process [01] exited with status 2; stopping the others$",
                     out.stderr, re.M), out.stderr
