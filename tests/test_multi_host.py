"""The SFT stage over two processes of two CPU devices each, as on two hosts: it trains like one
device, its checkpoints resume on another process count and mesh, and a lost process stops
the other one (naming it, in bounded time) instead of leaving it in a collective forever."""

from __future__ import annotations

import json
import pathlib
import re
import signal
import time

import numpy as np
import pytest

from reft_jax.parallel.watchdog import LOST_PROCESS_EXIT
from reft_jax.train.sft import run_sft
from tests.multi_process import processes, run_processes
from tests.test_train_sft_stage import final_params, make_config, write_dataset
from tests.tiny_hf import save_tiny

pytestmark = pytest.mark.slow

HEARTBEAT_TIMEOUT = 10  # seconds without a sign of life before a process counts as lost


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """A tiny model, a dataset and the one-process, one-device run every other must match."""
    root = tmp_path_factory.mktemp("multi_host")
    save_tiny(root / "tiny", "llama", hidden_size=64, intermediate_size=128)
    data = write_dataset(root / "data" / "train.jsonl")
    config = make_config(root / "single", root / "tiny", data)
    run_sft(config, log=lambda *_: None)
    return root / "tiny", data, config


def assert_same_params(config, single) -> None:
    ours, want = final_params(config), final_params(single)
    assert ours.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(ours[name], want[name], atol=2e-5, err_msg=name)


def metric_records(config) -> list[dict]:
    path = pathlib.Path(config.workdir) / "sft" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_processes_train_like_one_device(tmp_path, single):
    """Data x fsdp = 2 x 2 over two processes, through the command-line entry: the one-device
    run's parameters, and only the first process writes."""
    model, data, one = single
    outputs = run_processes("sft", tmp_path, model, data)
    assert "sft done" in outputs[0] and "sft done" not in outputs[1]
    pod = make_config(tmp_path, model, data)
    assert_same_params(pod, one)
    records = metric_records(pod)
    assert [r["kind"] for r in records] == [r["kind"] for r in metric_records(one)]  # one writer
    examples = [r["examples"] for r in records if r["kind"] != "train"]
    assert examples == [2.0, 2.0, 2.0]  # each evaluation counted both processes' shares


def kill_mid_run(folder, model, data, victim: int) -> tuple[int, float, str]:
    """Two processes train until process 1 stalls after its checkpoint at step 2 (process 0
    then waits for it in a collective); `victim` is killed with SIGKILL. The other's exit
    status, seconds from the kill to its exit, and its output."""
    timeout = f"distributed.heartbeat_timeout_s={HEARTBEAT_TIMEOUT}"
    with processes("sft", folder, model, data, timeout, "stall_after=2") as running:
        running.wait_for(1, "stalled after step 2", timeout=300)
        running.children[victim].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        status = running.wait(1 - victim, timeout=120)
        took = time.monotonic() - killed
        print(f"process {1 - victim} exited {status}, {took:.1f} s after the kill")
        return status, took, running.output(1 - victim)


def test_a_lost_process_stops_the_other_and_the_same_command_resumes(tmp_path, single):
    """Process 0 exits 75 within a bounded time, naming process 1; run again, both resume
    from the last checkpoint and end where the uninterrupted run does."""
    model, data, one = single
    status, took, survivor = kill_mid_run(tmp_path, model, data, victim=1)
    assert status == LOST_PROCESS_EXIT, survivor[-5000:]
    assert "error: lost process 1 of 2: no sign of life for 10 s" in survivor, survivor[-5000:]
    assert HEARTBEAT_TIMEOUT <= took < 2 * HEARTBEAT_TIMEOUT, survivor[-5000:]

    outputs = run_processes("sft", tmp_path, model, data)
    assert "resuming from step 2" in outputs[0]
    assert_same_params(make_config(tmp_path, model, data), one)


def test_a_lost_coordinator_stops_the_other_and_one_process_resumes(tmp_path, single):
    """Losing process 0 takes the coordination service with it: JAX ends process 1 at once,
    naming the leader. The checkpoint the two processes saved on a (2, 2, 1) mesh resumes in
    one process on one device, to the uninterrupted run's parameters."""
    model, data, one = single
    status, took, survivor = kill_mid_run(tmp_path, model, data, victim=0)
    assert status != 0 and took < HEARTBEAT_TIMEOUT, survivor[-5000:]
    assert re.search(r"lost process 0 \(the coordinator\)|the leader task was preempted/died",
                     survivor), survivor[-5000:]

    config = make_config(tmp_path, model, data)
    messages = []
    run_sft(config, log=messages.append)
    assert any("resuming from step 2" in m for m in messages), messages
    assert_same_params(config, one)


def test_an_error_before_the_run_loop_stops_the_other_process_at_once(tmp_path, single):
    """Process 1 raises while its stage is still being built; process 0, already in its loop
    (waiting for process 1 in the first step's collectives), exits 75 naming it as failed, not
    lost, well before the heartbeat timeout would call it lost."""
    model, data, _ = single
    timeout = f"distributed.heartbeat_timeout_s={HEARTBEAT_TIMEOUT}"
    with processes("sft", tmp_path, model, data, timeout, "fail_before_loop=1") as running:
        failed = running.wait(1, timeout=300)
        assert failed != 0 and "injected failure on process 1" in running.output(1), \
            running.output(1)[-5000:]
        status = running.wait(0, timeout=120)
        survivor = running.output(0)
    assert status == LOST_PROCESS_EXIT, survivor[-5000:]
    assert "error: process 1 of 2 stopped with an error" in survivor, survivor[-5000:]
    assert "no sign of life" not in survivor, survivor[-5000:]
