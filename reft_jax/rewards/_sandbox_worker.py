"""The sandbox worker: a zygote process that runs each untrusted program in a fresh forked child.

Runs as its own interpreter (``python -I this_file.py '<settings json>'``), started by
``sandbox.SandboxPool``; it imports nothing from reft_jax, so the trainer's modules, environment and
memory never reach it. Layers, outermost first (each one alone should stop the hostile programs in
tests/test_sandbox*.py; together they are defence in depth):

1. The zygote: a fresh interpreter with an empty environment, its own session, a private network
   namespace when the kernel allows (no interfaces but a down loopback), the uid ``nobody`` when
   started as root, no_new_privs, a throw-away working directory, fds 0-2 on /dev/null.
2. One forked child per program, so a program cannot change what the next one sees: rlimits on CPU
   time, address space, file size, open files and processes (RLIMIT_NPROC=0 works because the uid is
   not root), a parent-death signal, and stdout/stderr swapped for a size-capped sink.
3. An audit hook (PEP 578) in the child refusing process creation, signals, sockets, ctypes, rlimit
   changes, writes outside the working directory and reads outside Python's own install.
The zygote waits for each child with a wall-clock deadline and SIGKILLs it after; anything but a clean
result is reported as ``null`` (no answer).

Protocol on fds (dup'ed away from 0/1 so programs cannot write into it): the zygote prints
``"ready"`` once, then for every request line ``{"timeout": s, "programs": [..]}`` one line
``[i, value]`` per program, in order, where value is a float, a str or null.
"""

import importlib
import json
import math
import os
import resource
import select
import shutil
import signal
import sys
import time
import types

_NOBODY = 65534
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38

_BLOCKED_EVENTS = frozenset(
    """os.system os.exec os.posix_spawn os.spawn os.fork os.forkpty os.kill os.killpg os.putenv
    os.unsetenv os.remove os.rename os.rmdir os.mkdir os.chmod os.chown os.link os.symlink
    os.truncate os.utime os.setxattr os.removexattr os.chflags os.lchflags os.startfile
    subprocess.Popen pty.spawn signal.pthread_kill shutil.rmtree shutil.move shutil.copyfile
    shutil.copymode shutil.copystat shutil.chown shutil.make_archive shutil.unpack_archive
    socket.__new__ socket.bind socket.connect socket.getaddrinfo socket.gethostbyname
    socket.gethostbyname_ex socket.gethostbyaddr socket.sendto socket.sethostname
    ctypes.dlopen ctypes.dlsym ctypes.call_function ctypes.cdata ctypes.addressof
    ctypes.create_string_buffer ctypes.create_unicode_buffer ctypes.string_at ctypes.wstring_at
    ctypes.set_errno ctypes.get_errno resource.setrlimit resource.prlimit sys.addaudithook
    mmap.__new__ urllib.Request http.client.connect
    ftplib.connect smtplib.connect webbrowser.open winreg.OpenKey fcntl.ioctl fcntl.fcntl
    fcntl.flock fcntl.lockf os.chdir os.chroot os.setuid os.setgid
    """.split()
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class _CappedSink:
    """Stands in for stdout/stderr: counts and drops what a program prints (printing gigabytes only
    costs that program its CPU time)."""

    def __init__(self, cap):
        self.cap, self.size = cap, 0

    def write(self, s):
        self.size += len(s)
        if self.size > self.cap:
            raise OSError("output cap exceeded")
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False


def _libc():
    import ctypes  # noqa: PLC0415 - only the zygote and the child's setup call it, before the hook

    return ctypes.CDLL(None, use_errno=True)


def _make_hook(workdir, read_roots):
    workdir = workdir.rstrip("/") + "/"
    read_roots = tuple(r.rstrip("/") + "/" for r in read_roots) + (workdir,)
    realpath = os.path.realpath

    def allowed(path, roots):
        if isinstance(path, int):
            return True
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        full = realpath(path) + "/"
        return any(full.startswith(r) for r in roots)

    def hook(event, args):
        if event in _BLOCKED_EVENTS:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if not allowed(path, (workdir,) if writing else read_roots):
                raise PermissionError(f"sandbox: open({path!r}) is not allowed")
        elif event in ("os.listdir", "os.scandir"):
            if args and args[0] is not None and not allowed(args[0], read_roots):
                raise PermissionError(f"sandbox: {event} is not allowed")

    return hook


def _plain(value, str_cap):
    """solution()'s value as JSON-able float/str, or None; runs in the child (may call program code)."""
    if isinstance(value, str):
        return value if len(value) <= str_cap else None
    if value is None or isinstance(value, (list, tuple, dict, set)):
        return None
    try:
        x = float(value)  # bool, int, float, Fraction, Decimal, sympy and numpy numbers
    except Exception:  # noqa: BLE001 - any failure means "no answer"
        return None
    return x if math.isfinite(x) else None


def _child(program, timeout, settings, proto_fds, result_w, zygote_pid, hook):
    """Never returns: runs one program and writes its JSON result to result_w."""
    out = "null"
    try:
        for fd in proto_fds:
            os.close(fd)
        libc = _libc()
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != zygote_pid:
            os._exit(1)
        cpu = max(1, math.ceil(timeout))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (settings["as_bytes"], settings["as_bytes"]))
        resource.setrlimit(resource.RLIMIT_FSIZE, (settings["fsize_bytes"],) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if os.getuid() != 0:  # root ignores RLIMIT_NPROC; the zygote dropped root when it had it
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        sink = _CappedSink(settings["output_cap"])
        sys.stdout = sys.stderr = sink
        sys.stdin = None
        sys.addaudithook(hook)
        scope = {"__name__": "__sandbox__", "math": math, "sympy": sys.modules["sympy"]}
        exec(compile(program, "<program>", "exec"), scope)  # noqa: S102 - this is the sandbox
        value = _plain(scope["solution"](), settings["str_cap"])
        out = json.dumps(value)
    except BaseException:  # noqa: BLE001 - SystemExit, MemoryError, RecursionError: no answer
        out = "null"
    try:
        os.write(result_w, out.encode())
    finally:
        os._exit(0)


def _read_result(fd, deadline, cap):
    chunks, size = [], 0
    while size <= cap:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
        size += len(data)
    else:
        return None
    try:
        value = json.loads(b"".join(chunks))
    except ValueError:
        return None
    if isinstance(value, float) and math.isfinite(value):
        return value
    return value if isinstance(value, str) else None


def _run_one(program, timeout, settings, proto_fds, hook, workdir):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child(program, timeout, settings, proto_fds, w, os.getppid(), hook)
    os.close(w)
    try:
        value = _read_result(r, time.monotonic() + timeout, settings["str_cap"] + 64)
    finally:
        os.close(r)
        try:
            os.kill(pid, signal.SIGKILL)  # still a zombie at worst, so the pid cannot be reused
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    if os.listdir(workdir):
        _empty(workdir)
    return value


def _empty(workdir):
    for name in os.listdir(workdir):
        path = os.path.join(workdir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


class _LazySympy(types.ModuleType):
    """``sympy`` in light workers: importing it is free, touching it imports the real one (slow, in
    the child, under its limits). Forking a process that holds sympy costs ~3x more, so programs
    that name sympy go to a preloaded worker instead (see sandbox.needs_sympy)."""

    def __getattr__(self, name):
        if sys.modules.get("sympy") is self:
            del sys.modules["sympy"]
        real = importlib.import_module("sympy")
        self.__dict__.update(real.__dict__)
        return getattr(real, name)


# Imported before the uid drops, since the unprivileged uid may not be able to read the install
# (e.g. a pyenv under /root). Anything else a program imports may fail: that is "no answer".
_PRELOAD = (
    "bisect cmath collections copy datetime decimal fractions functools heapq itertools numbers "
    "operator random re statistics string"
).split()


def _isolate(settings):
    """Zygote setup, in order: warm imports, network namespace, uid, no_new_privs, death signal."""
    for name in _PRELOAD:
        importlib.import_module(name)
    if settings["preload_sympy"]:
        import sympy

        x = sympy.Symbol("x")  # pull lazily imported submodules in before the uid drops
        str(sympy.solve(sympy.Eq(2 * x + sympy.Rational(1, 3), 5), x))
        sympy.simplify(sympy.sqrt(8) * x / 4).evalf()
        sympy.nsimplify(0.5)
    else:
        sys.modules["sympy"] = _LazySympy("sympy")
    libc = _libc()
    layers = []
    if libc.unshare(_CLONE_NEWNET) == 0:
        layers.append("netns")
    workdir = settings["workdir"]
    os.chdir(workdir)
    if os.getuid() == 0:
        os.setgroups([])
        os.setgid(_NOBODY)
        os.setuid(_NOBODY)
        layers.append("uid")
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setuid, which clears it
    if os.getppid() != settings["parent_pid"]:
        sys.exit(1)
    os.environ.clear()
    sys.dont_write_bytecode = True
    return layers


def main():
    settings = json.loads(sys.argv[1])
    proto_in, proto_out = os.dup(0), os.dup(1)
    roots = {os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)}
    roots |= {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    layers = _isolate(settings)
    workdir = os.path.realpath(settings["workdir"])
    hook = _make_hook(workdir, sorted(roots))
    base_as = os.sysconf("SC_PAGE_SIZE") * int(open("/proc/self/statm").read().split()[0])
    settings["as_bytes"] = base_as + settings["memory_bytes"]
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    reader = os.fdopen(proto_in, "rb")
    os.write(proto_out, (json.dumps({"ready": layers}) + "\n").encode())
    for line in reader:
        request = json.loads(line)
        timeout = float(request["timeout"])
        for i, program in enumerate(request["programs"]):
            value = _run_one(program, timeout, settings, (proto_in, proto_out), hook, workdir)
            os.write(proto_out, (json.dumps([i, value]) + "\n").encode())


if __name__ == "__main__":
    main()
