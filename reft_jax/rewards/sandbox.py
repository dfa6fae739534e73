"""A pool of long-lived sandbox workers that run untrusted P-CoT programs outside the trainer.

Each worker is a separate interpreter (``_sandbox_worker.py``) that forks one locked-down child per
program; see that file for the layers. This side only hands out batches, enforces a wall-clock
backstop, and replaces a worker that dies or stalls: whatever a program does, the caller gets one
result per program (float, str or None) and never an exception from the program.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time

_WORKER = pathlib.Path(__file__).with_name("_sandbox_worker.py")
DEFAULT_TIMEOUT = 10.0  # seconds per program, as in the paper
_NOBODY = 65534


_PRELUDE = re.compile(r"^[ \t]*(import (math|sympy)|from math import [\w, ]+)[ \t]*$", re.M)


def needs_sympy(program: str) -> bool:
    """Whether a program names sympy beyond a bare ``import sympy`` (which the reward prepends)."""
    return "sympy" in _PRELUDE.sub("", program)


class SandboxError(RuntimeError):
    """The sandbox itself could not start (not raised for anything a program does)."""


class _Worker:
    """One zygote process, its throw-away directory and the programs it still owes results for."""

    def __init__(self, settings: dict, sympy: bool, start_timeout: float):
        self.sympy = sympy
        self.workdir = tempfile.mkdtemp(prefix="reft_sandbox_")
        if os.getuid() == 0:
            os.chown(self.workdir, _NOBODY, _NOBODY)
        settings = dict(settings, workdir=self.workdir, parent_pid=os.getpid(), preload_sympy=sympy)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(_WORKER), json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"},
            cwd=self.workdir,
            start_new_session=True,
            close_fds=True,
        )
        self.ready = False
        self.layers: list[str] = []
        self.buffer = b""
        self.owed: collections.deque[int] = collections.deque()  # global indices, in run order
        self.deadline = time.monotonic() + start_timeout

    def send(self, indices: list[int], programs: list[str], timeout: float) -> bool:
        self.owed.extend(indices)
        line = json.dumps({"timeout": timeout, "programs": programs}) + "\n"
        try:
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
        except OSError:
            return False
        return True

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)

    def startup_error(self) -> str:
        try:
            self.proc.wait(timeout=1)
            err = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
        except (OSError, subprocess.TimeoutExpired):
            err = []
        return err[-1] if err else f"exit status {self.proc.returncode}"


class SandboxPool:
    """Long-lived sandbox workers; ``run(programs)`` returns solution()'s value per program or None.

    Args:
      workers: number of worker processes (default: CPU count), plus ``sympy_workers`` more with
        sympy preloaded, started only when a program names sympy.
      timeout: default wall-clock seconds per program (CPU time is capped at the same, rounded up).
      memory_mb: address space a program may add on top of the worker's own.
      output_cap: bytes a program may print before it is stopped (its output is discarded).
      batch: programs per worker round trip; small enough that a stuck program delays few others.
      start_timeout: seconds a new worker may take to import sympy and lock itself down.
    """

    def __init__(
        self,
        workers: int | None = None,
        sympy_workers: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
        memory_mb: int = 1024,
        output_cap: int = 1 << 20,
        batch: int = 32,
        start_timeout: float = 60.0,
    ):
        self.n_workers = workers if workers is not None else (os.cpu_count() if os.cpu_count() else 1)
        self.n_sympy_workers = sympy_workers
        self.timeout = timeout
        self.batch = batch
        self.start_timeout = start_timeout
        self.settings = {
            "memory_bytes": int(memory_mb) << 20,
            "fsize_bytes": 16 << 20,
            "output_cap": int(output_cap),
            "str_cap": 10_000,
        }
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self.replaced = 0  # workers killed and replaced so far (a health counter for logs)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            for w in self._workers:
                w.kill()
            self._workers = []

    @property
    def layers(self) -> list[str]:
        """Isolation layers the running workers reported beyond rlimits and the audit hook."""
        return self._workers[0].layers if self._workers and self._workers[0].ready else []

    def run(self, programs: list[str], timeout: float | None = None) -> list[float | str | None]:
        """Run whole programs (each defining ``solution()``); one plain result per program."""
        programs = list(programs)
        for p in programs:
            if not isinstance(p, str):
                raise TypeError(f"programs must be str, got {type(p).__name__}")
        timeout = float(timeout if timeout is not None else self.timeout)
        if not programs:
            return []
        with self._lock:
            return self._run(programs, timeout)

    def _run(self, programs: list[str], timeout: float) -> list:
        results: list = [None] * len(programs)
        done = [False] * len(programs)
        pending: dict[bool, collections.deque] = {False: collections.deque(), True: collections.deque()}
        for kind in (False, True):
            idx = [i for i, p in enumerate(programs) if needs_sympy(p) == kind]
            size = max(1, min(self.batch, -(-len(idx) // (2 * self.n_workers))))
            pending[kind].extend(idx[i : i + size] for i in range(0, len(idx), size))
        for w in [w for w in self._workers if w.proc.poll() is not None]:
            w.kill()  # died between calls: replace it before it is blamed for a program
            self._workers.remove(w)
        self._spawn(False, self.n_workers)
        if pending[True]:
            self._spawn(True, self.n_sympy_workers)
        sel = selectors.DefaultSelector()
        try:
            for w in self._workers:
                sel.register(w.proc.stdout, selectors.EVENT_READ, w)
            while not all(done):
                for w in list(self._workers):
                    if not w.owed and pending[w.sympy]:
                        chunk = pending[w.sympy].popleft()
                        if w.ready:
                            w.deadline = time.monotonic() + timeout + 5.0
                        if not w.send(chunk, [programs[i] for i in chunk], timeout):
                            self._replace(w, sel, pending, done)
                now = time.monotonic()
                wait = min((w.deadline for w in self._workers if w.owed), default=now + 1.0) - now
                for key, _ in sel.select(max(0.0, wait)):
                    self._read(key.data, sel, results, done, pending, timeout)
                now = time.monotonic()
                for w in list(self._workers):
                    if w.owed and now > w.deadline:
                        self._replace(w, sel, pending, done)
        except BaseException:
            for w in self._workers:  # a half-served batch must not leak into the next call
                w.kill()
            self._workers = []
            raise
        finally:
            sel.close()
        return results

    def _spawn(self, sympy: bool, count: int) -> None:
        while sum(w.sympy == sympy for w in self._workers) < count:
            self._workers.append(_Worker(self.settings, sympy, self.start_timeout))

    def _read(self, w: _Worker, sel, results, done, pending, timeout: float) -> None:
        try:
            data = os.read(w.proc.stdout.fileno(), 1 << 16)
        except OSError:
            data = b""
        if not data:
            self._replace(w, sel, pending, done)
            return
        w.buffer += data
        *lines, w.buffer = w.buffer.split(b"\n")
        for line in lines:
            try:
                msg = json.loads(line)
            except ValueError:
                self._replace(w, sel, pending, done)
                return
            if not w.ready:
                w.ready, w.layers = True, list(msg.get("ready", []))
            elif w.owed:
                i = w.owed.popleft()
                value = msg[1] if isinstance(msg, list) and len(msg) == 2 else None
                results[i] = value if isinstance(value, (float, str)) else None
                done[i] = True
            w.deadline = time.monotonic() + timeout + 5.0

    def _replace(self, w: _Worker, sel, pending, done) -> None:
        """Kill a dead or stalled worker: blame the program it was running, requeue the rest."""
        if not w.ready:
            msg = w.startup_error()
            w.kill()
            self._workers.remove(w)
            raise SandboxError(f"sandbox worker failed to start: {msg}")
        sel.unregister(w.proc.stdout)
        w.kill()
        owed = list(w.owed)
        if owed:
            done[owed[0]] = True  # its result stays None
            if owed[1:]:
                pending[w.sympy].appendleft(owed[1:])
        new = _Worker(self.settings, w.sympy, self.start_timeout)
        self._workers[self._workers.index(w)] = new
        sel.register(new.proc.stdout, selectors.EVENT_READ, new)
        self.replaced += 1


def run_programs(
    programs: list[str], timeout: float = DEFAULT_TIMEOUT, pool: SandboxPool | None = None
) -> list[float | str | None]:
    """Run whole P-CoT programs in the sandbox: solution()'s value as a float or str, else None.

    Without a `pool` one is started for this call and closed after it (workers start in a few
    hundred milliseconds); a stage that scores batch after batch owns a `SandboxPool`, passes
    it, and closes it when it ends. No pool outlives its owner.
    """
    programs = list(programs)
    if pool is not None:
        return pool.run(programs, timeout=timeout)
    if not programs:
        return []
    workers = max(1, min(os.cpu_count() or 1, -(-len(programs) // 16)))
    with SandboxPool(workers=workers, timeout=timeout) as own:
        return own.run(programs)
