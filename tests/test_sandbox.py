"""The program sandbox: correct answers for honest programs, "no answer" for hostile ones, and nothing
outside the sandbox changes. Short timeouts keep the suite fast."""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

from reft_jax.rewards.sandbox import SandboxPool, needs_sympy, run_programs

TIMEOUT = 1.0
NOBODY = 65534


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=2, timeout=TIMEOUT) as p:
        yield p


def prog(*body: str, imports: str = "") -> str:
    return imports + "def solution():\n" + "".join(f"    {line}\n" for line in body)


GOOD = prog("a = 29", "b = 7", "return a * b")  # 203, by hand


def test_values_are_plain_floats_or_str(pool):
    programs = [
        GOOD,
        prog("return '12'"),
        prog("return True"),
        prog("return 7 // 2"),
        prog("return sympy.Rational(1, 4)"),
        prog("return math.sqrt(16)"),
        prog("from fractions import Fraction", "return Fraction(3, 4)"),
        prog("return None"),
        prog("return [1, 2]"),
        prog("return float('nan')"),
        prog("x = sympy.Symbol('x')", "return sympy.solve(x - 5, x)[0]"),
        prog("raise ValueError('boom')"),
        "def solution(:\n    return 1\n",  # syntax error
        "x = 1\n",  # no solution()
    ]
    got = pool.run(programs)
    assert got == [203.0, "12", 1.0, 3.0, 0.25, 4.0, 0.75, None, None, None, 5.0, None, None, None]
    assert all(type(v) in (float, str) for v in got if v is not None)


def test_needs_sympy_routing():
    assert not needs_sympy("import math\nimport sympy\ndef solution():\n    return 1\n")
    assert needs_sympy("import sympy\ndef solution():\n    return sympy.pi\n")
    assert needs_sympy("from sympy import symbols\n")


def sandbox_uid() -> int:
    """The uid programs run as: nobody when the pool starts as root, else ours."""
    return NOBODY if os.getuid() == 0 else os.getuid()


def readable_by(uid: int, path: pathlib.Path) -> bool:
    """Whether `uid` may read `path` (every folder above it searchable), from the mode bits; a
    uid that owns nothing gets the "other" bits."""
    if uid == os.getuid():
        return os.access(path, os.R_OK)
    folders = [p for p in path.resolve().parents]
    return (all(os.stat(f).st_mode & stat.S_IXOTH for f in folders)
            and bool(os.stat(path).st_mode & stat.S_IROTH))


def test_lazy_sympy_works_exactly_where_the_sandbox_uid_can_read_sympy(pool):
    # Obfuscated use reaches the light worker, whose sympy stub imports the real one on first use,
    # under the limits: it must work where the sandbox's uid can read the installed sympy and
    # mpmath, and be "no answer" where it cannot (root, with Python under a private /root).
    import mpmath
    import sympy

    p = prog("m = __import__('sym' + 'py')", "return m.Rational(3, 2)")
    assert not needs_sympy(p)
    uid = sandbox_uid()
    readable = all(readable_by(uid, pathlib.Path(m.__file__)) for m in (sympy, mpmath))
    assert pool.run([p], timeout=20.0) == [1.5 if readable else None]


def run_one(pool, program, timeout=TIMEOUT):
    start = time.monotonic()
    (value,) = pool.run([program], timeout=timeout)
    elapsed = time.monotonic() - start
    assert elapsed < timeout + 4.0, f"took {elapsed:.1f}s"
    return value


HOSTILE = {
    "infinite_loop": prog("while True:", "    pass"),
    "sleep_forever": prog("import time", "time.sleep(1000)"),
    "ignore_signals": prog(
        "import signal",
        "for s in (signal.SIGTERM, signal.SIGALRM, signal.SIGXCPU, signal.SIGINT):",
        "    signal.signal(s, signal.SIG_IGN)",
        "while True:",
        "    pass",
    ),
    "fork_bomb": prog("import os", "while True:", "    os.fork()", "return 1"),
    "memory_bomb": prog("a = []", "while True:", "    a.append(bytearray(10**8))"),
    "one_huge_alloc": prog("x = bytearray(10**11)", "return 1"),
    "deep_recursion": prog("def f(n):", "    return f(n + 1) + 1", "return f(0)"),
    "deep_recursion_segfault": prog(
        "import sys",
        "sys.setrecursionlimit(10**8)",
        "def f(n):",
        "    return f(n + 1) + 1",
        "return f(0)",
    ),
    "huge_print": prog("while True:", "    print('x' * 10**6)"),
    "huge_os_write": prog("import os", "while True:", "    os.write(1, b'x' * 10**6)"),
    "sys_exit": prog("import sys", "sys.exit(0)"),
    "os_exit": prog("import os", "os._exit(0)"),
    "kill_parent": prog("import os", "os.kill(os.getppid(), 9)", "return 1"),
    "killpg": prog("import os", "os.killpg(0, 9)", "return 1"),
    "close_fds": prog("import os", "for fd in range(256):", "    try:", "        os.close(fd)",
                      "    except OSError:", "        pass", "return 1"),
    "os_system": prog("import os", "os.system('echo hi')", "return 1"),
    "subprocess": prog("import subprocess", "subprocess.run(['true'])", "return 1"),
    "ctypes": prog("import ctypes", "ctypes.CDLL(None).kill(ctypes.CDLL(None).getppid(), 9)", "return 1"),
    "setrlimit": prog("import resource", "resource.setrlimit(resource.RLIMIT_CPU, (-1, -1))", "return 1"),
    "exception": prog("return 1 / 0"),
}


def worker_pids(pool):
    return [w.proc.pid for w in pool._workers]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_is_no_answer_and_the_worker_survives(pool, name):
    """Each of these is stopped inside the worker (the audit hook, an rlimit, or the worker's own
    deadline on its child): no worker is killed or replaced, the same processes serve on."""
    pool.run([GOOD, GOOD])
    before, replaced = worker_pids(pool), pool.replaced
    assert run_one(pool, HOSTILE[name]) is None
    assert pool.run([GOOD]) == [203.0]  # the pool still serves
    assert pool.replaced == replaced and worker_pids(pool) == before


def test_hostile_batch_costs_only_its_own_answers(pool):
    names = sorted(HOSTILE)
    programs = []
    for name in names:
        programs += [GOOD, HOSTILE[name]]
    replaced = pool.replaced
    got = pool.run(programs, timeout=TIMEOUT)
    assert got[0::2] == [203.0] * len(names)
    assert got[1::2] == [None] * len(names)
    assert pool.replaced == replaced


def test_kill_test_process_by_pid(pool):
    me, replaced = os.getpid(), pool.replaced
    assert run_one(pool, prog("import os", f"os.kill({me}, 9)", "return 1")) is None
    assert run_one(pool, prog("import os, signal", f"os.kill({me}, signal.SIGTERM)", "return 1")) is None
    assert pool.replaced == replaced


def test_a_returned_object_never_runs_code_in_the_trainer(pool, tmp_path):
    """Results cross as JSON, never pickles: an object whose unpickling (or whose conversion)
    would run code gives no answer or its plain value, and the trainer runs none of it."""
    marker = tmp_path / "unpickled"
    reduce = ("    def __reduce__(self):", f"        return (os.system, ('touch {marker}',))")
    programs = [
        prog("import os", "class Evil:", *reduce, "return Evil()"),
        prog("import os", "class Evil(float):", *reduce, "return Evil(2.5)"),
        prog("import os", "class Evil(str):", *reduce, "return Evil('12')"),
        prog("import os", "class Evil:", *reduce,
             "    def __float__(self):", f"        open({str(marker)!r}, 'w')", "        return 1.0",
             "return Evil()"),
    ]
    replaced = pool.replaced
    got = pool.run(programs)
    assert got == [None, 2.5, "12", None]
    assert [type(v) for v in got[1:3]] == [float, str]  # plain values, not the program's classes
    assert not marker.exists()
    assert pool.replaced == replaced


def test_a_program_cannot_change_what_the_next_one_sees():
    patch = prog("import builtins, math, sys",
                 "builtins.abs = lambda x: 42", "builtins.print = None",
                 "math.sqrt = lambda x: 99", "sys.modules['math'].pi = 3",
                 "sys.modules['fractions'] = None", "sympy.Rational = None",
                 "__builtins__['len'] = lambda x: 0", "return 1")
    check = prog("from fractions import Fraction",
                 "return abs(-3) + math.sqrt(16) + math.pi + len('ab') + float(Fraction(1, 2))")
    expected = 3 + 4 + 3.141592653589793 + 2 + 0.5
    with SandboxPool(workers=1, timeout=TIMEOUT) as one:  # one worker: both run in it
        assert one.run([patch, check]) == [1.0, expected]
        assert one.run([check]) == [expected]
        assert one.replaced == 0


def test_a_file_past_the_size_limit_is_no_answer(pool):
    """RLIMIT_FSIZE (16 MiB) stops the write; smaller scratch files are fine and discarded."""
    big = prog("open('big.bin', 'wb').write(b'x' * (17 << 20))", "return 1")
    small = prog("open('big.bin', 'wb').write(b'x' * (15 << 20))", "return 1")
    leftover = prog("import os", "return str(os.listdir('.'))")
    replaced = pool.replaced
    assert pool.run([big]) == [None]
    assert pool.run([small]) == [1.0]
    assert pool.run([leftover]) == ["[]"]
    assert pool.replaced == replaced


def test_programs_run_as_the_sandbox_uid(pool):
    got = pool.run([prog("import os", "return float(os.getuid())"),
                    prog("import os", "return float(os.geteuid())")])
    assert got == [float(sandbox_uid())] * 2


@pytest.fixture
def open_dir():
    """A world-writable directory in /tmp (pytest's tmp_path sits under a 0700 parent), so that
    the audit hook is tested and not only the unprivileged uid."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="reft_victim_", dir="/tmp"))
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_files_outside_the_sandbox_are_untouched(pool, open_dir):
    tmp_path = open_dir
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.chmod(victim, 0o666)
    new_file = f"/tmp/reft_sandbox_pwned_{uuid.uuid4().hex}"
    attacks = [
        prog("import os", f"os.remove({str(victim)!r})", "return 1"),
        prog(f"open({str(victim)!r}, 'w').write('pwned')", "return 1"),
        prog(f"open({str(victim)!r}, 'a').write('pwned')", "return 1"),
        prog("import os", f"fd = os.open({str(victim)!r}, os.O_WRONLY | os.O_TRUNC)", "return 1"),
        prog("import shutil", f"shutil.rmtree({str(tmp_path)!r})", "return 1"),
        prog("import os", f"os.rename({str(victim)!r}, {str(victim) + '.bak'!r})", "return 1"),
        prog(f"open({new_file!r}, 'w').write('pwned')", "return 1"),
        prog("import pathlib", f"pathlib.Path({new_file!r}).write_text('x')", "return 1"),
        prog("import os", f"os.system('touch {new_file}')", "return 1"),
        prog(f"return open({str(victim)!r}).read()"),  # reading outside is refused too
    ]
    assert pool.run(attacks) == [None] * len(attacks)
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.txt"]
    assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o777
    assert not os.path.exists(new_file)


def test_scratch_writes_inside_the_sandbox_are_allowed_and_discarded(pool):
    write = prog("open('scratch.txt', 'w').write('12')", "return float(open('scratch.txt').read())")
    leftover = prog("import os", "return str(os.listdir('.'))")
    assert pool.run([write]) == [12.0]
    assert pool.run([leftover]) == ["[]"]


def test_no_network(pool):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    try:
        attack = prog(
            "import socket",
            "s = socket.socket()",
            f"s.connect(('127.0.0.1', {port}))",
            "s.sendall(b'leak')",
            "return 1",
        )
        assert run_one(pool, attack) is None
        raw = prog("import _socket", "s = _socket.socket()", f"s.connect(('127.0.0.1', {port}))",
                   "return 1")
        assert run_one(pool, raw) is None
        helper = prog("import socket", f"socket.create_connection(('localhost', {port}), 0.5)",
                      "return 1")
        assert run_one(pool, helper) is None
        assert run_one(pool, prog("import socket", "return socket.gethostbyname('localhost')")) is None
        with pytest.raises(OSError):  # socket.timeout: nobody connected
            server.accept()
    finally:
        server.close()


def test_trainer_environment_is_invisible(monkeypatch):
    monkeypatch.setenv("REFT_TEST_SECRET", "hunter2")
    with SandboxPool(workers=1, timeout=TIMEOUT) as fresh:  # started after the secret was set
        got = fresh.run(
            [
                prog("import os", "return os.environ.get('REFT_TEST_SECRET', 'absent')"),
                prog("import os", "return str(len(os.environ))"),
                prog(f"return open('/proc/{os.getpid()}/environ').read()"),
                prog("return open('/proc/self/environ').read()"),
            ]
        )
    assert got[0] == "absent"
    assert got[1] == "0"
    assert got[2] is None
    assert got[3] in (None, "")


def test_dead_worker_is_replaced_between_calls(pool):
    for w in pool._workers:
        w.proc.kill()
        w.proc.wait()
    assert pool.run([GOOD, GOOD, GOOD]) == [203.0] * 3


def test_worker_killed_mid_batch_costs_one_answer_per_worker():
    with SandboxPool(workers=1, timeout=5.0) as p:
        p.run([GOOD])
        sleeper = prog("import time", "time.sleep(0.5)", "return 2")
        victim = p._workers[0].proc
        threading.Timer(0.2, victim.kill).start()
        got = p.run([sleeper, sleeper, sleeper])
        assert got == [None, 2.0, 2.0]
        assert p.replaced == 1


def kernel_allows_network_namespaces() -> bool:
    """Asked of the kernel in a throw-away process (unshare changes the caller)."""
    probe = "import ctypes; print(ctypes.CDLL(None, use_errno=True).unshare(0x40000000))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() == "0"


def proc_uid(pid: int) -> int:
    line = next(x for x in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines()
                if x.startswith("Uid:"))
    return int(line.split()[1])


def interfaces(pid) -> set[str]:
    lines = pathlib.Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    return {line.split(":")[0].strip() for line in lines}


def test_isolation_layers_are_those_the_machine_allows(pool):
    pool.run([GOOD])
    netns = kernel_allows_network_namespaces()
    expected = (["netns"] if netns else []) + (["uid"] if os.getuid() == 0 else [])
    assert pool.layers == expected
    for pid in worker_pids(pool):  # seen from outside, in /proc
        assert proc_uid(pid) == sandbox_uid()
        other_ns = os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        assert other_ns == netns
        if netns:
            assert interfaces(pid) == {"lo"}  # a namespace of its own: only a (down) loopback


def sandbox_children() -> list[int]:
    """Worker processes this test process started and that still run."""
    pids = []
    for status in pathlib.Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields["PPid"]) == os.getpid() and b"_sandbox_worker" in cmdline:
            pids.append(int(status.parent.name))
    return pids


def test_run_programs_without_a_pool_starts_and_closes_its_own():
    before = sorted(sandbox_children())  # the module's pool's workers
    assert run_programs([GOOD, prog("while True:", "    pass")], timeout=0.5) == [203.0, None]
    assert sorted(sandbox_children()) == before  # nothing left running: no hidden global pool
    with SandboxPool(workers=1, timeout=TIMEOUT) as own:  # the probe does see a live worker
        own.run([GOOD])
        assert sorted(sandbox_children()) == sorted(before + worker_pids(own))
    assert run_programs([]) == []
