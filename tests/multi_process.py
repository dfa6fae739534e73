"""Local multi-process runs for tests, as on several hosts: every process is
tests/multi_process_case.py with two CPU devices of its own, they meet on a free localhost
port, and none outlives its test (each has a time limit and is killed when the test ends)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time

from tests.conftest import REPO

CASE = "tests/multi_process_case.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


class Processes:
    """The running processes of one case; their output goes to files (a pipe that nobody
    reads while waiting on another process could fill and stall its writer)."""

    def __init__(self, case: str, args, count: int):
        port, env = free_port(), dict(os.environ, PYTHONPATH=str(REPO))
        self.logs = [tempfile.TemporaryFile("w+") for _ in range(count)]
        self.children = [subprocess.Popen(
            [sys.executable, CASE, case, str(i), str(port), *map(str, args)], cwd=REPO,
            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
            for i, log in enumerate(self.logs)]

    def output(self, i: int) -> str:
        self.logs[i].seek(0)
        return self.logs[i].read()

    def wait_for(self, i: int, text: str, timeout: float) -> None:
        """Until process i prints `text`; fails if it exits or the time runs out first."""
        deadline = time.monotonic() + timeout
        while text not in self.output(i):
            assert self.children[i].poll() is None, f"process {i} ended:\n{self.output(i)[-5000:]}"
            assert time.monotonic() < deadline, (
                f"no {text!r} in {timeout} s:\n{self.output(i)[-5000:]}")
            time.sleep(0.2)

    def wait(self, i: int, timeout: float) -> int:
        return self.children[i].wait(timeout=timeout)

    def close(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()
        for log in self.logs:
            log.close()


@contextlib.contextmanager
def processes(case: str, *args, count: int = 2):
    """`count` processes of a case; any still running when the block ends are killed."""
    running = Processes(case, args, count)
    try:
        yield running
    finally:
        running.close()


def run_processes(case: str, *args, timeout: float = 600) -> list[str]:
    """Run a case to its end on two processes; both must exit 0. Their outputs."""
    with processes(case, *args) as running:
        for i in range(len(running.children)):
            status = running.wait(i, timeout)
            assert status == 0, f"process {i} exited {status}:\n{running.output(i)[-5000:]}"
        return [running.output(i) for i in range(len(running.children))]
