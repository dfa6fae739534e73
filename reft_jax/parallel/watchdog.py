"""Ending a multi-process run when one of its processes is lost, instead of hanging.

A process that is killed (SIGKILL, the out-of-memory killer, a preempted host) leaves the
others waiting in a collective that never completes: on GPUs NCCL waits forever. So every
process publishes a sign of life through the JAX coordination service, from a thread, so that
a long step or compile does not silence it, and watches the others' signs:

| another process's sign        | means                            | this process             |
|-------------------------------|----------------------------------|--------------------------|
| a counter that moves          | alive                            | goes on                  |
| no move for `timeout` seconds | lost (killed, OOM, preempted)    | exits 75, naming it      |
| `failed <n>`                  | its run raised (say, device OOM) | exits 75, naming it      |
| `stopped`                     | it ended on one of these rules   | exits 75; 1 if it failed |

Status 75 is EX_TEMPFAIL: run the same command again to resume from the last checkpoint. A
process whose own run raised ignores the others' failures (a non-finite loss stops every
process at once, and they end together as usual). When process 0 is lost, the coordination
service goes with it, and JAX itself ends the others at once ("the leader task was
preempted/died"); this thread may say so first.
"""

from __future__ import annotations

import os
import sys
import threading
import time

LOST_PROCESS_EXIT = 75  # EX_TEMPFAIL
FAILED, STOPPED = "failed", "stopped"
_KEYS = "reft/alive/"
_running: "Watchdog | None" = None


class Watchdog:
    """Signs of life of this process and the others through a coordination-service client
    (`key_value_set`, `key_value_dir_get`)."""

    def __init__(self, client, process_id: int, num_processes: int, timeout: float):
        self.client, self.process_id, self.num_processes = client, process_id, num_processes
        self.timeout = timeout
        self.period = min(5.0, timeout / 10)
        self.beats = 0
        self.failed = False
        self.closing = False  # this process is exiting: the service may go away as it should
        self.seen: dict[int, tuple[str | None, float]] = {}  # process: (sign, since when)

    def publish(self, sign: str | None = None) -> None:
        self.beats += 1
        sign = sign or (f"{FAILED} {self.beats}" if self.failed else str(self.beats))
        self.client.key_value_set(f"{_KEYS}{self.process_id}", sign, allow_overwrite=True)

    def check(self, now: float) -> tuple[str, int] | None:
        """Publish this process's sign of life; (why this process must end, exit status), or
        None while the others are well."""
        try:
            self.publish()
            signs = dict(self.client.key_value_dir_get(_KEYS))
        except Exception as err:  # noqa: BLE001 - any failure means the service is gone
            if self.closing:  # process 0 ended the service after the run ended everywhere
                return None
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            return f"lost process 0 (the coordinator): {reason}", LOST_PROCESS_EXIT
        n, verdicts = self.num_processes, []  # (rank, why, status): a loss is named first
        for other in range(n):
            if other == self.process_id:
                continue
            sign = signs.get(f"{_KEYS}{other}")
            if other not in self.seen or sign != self.seen[other][0]:
                self.seen[other] = (sign, now)
            elif now - self.seen[other][1] >= self.timeout:
                verdicts.append((0, f"lost process {other} of {n}: no sign of life for "
                                    f"{self.timeout:g} s (killed, out of memory, or its host "
                                    "preempted; config.distributed.heartbeat_timeout_s)",
                                 LOST_PROCESS_EXIT))
            if sign is not None and sign.startswith(FAILED) and not self.failed:
                verdicts.append((1, f"process {other} of {n} stopped with an error (its own "
                                    "output says which)", LOST_PROCESS_EXIT))
            if sign == STOPPED:
                verdicts.append((2, "the other processes stopped after this process's error", 1)
                                if self.failed else
                                (2, f"process {other} of {n} stopped after losing another "
                                    "process", LOST_PROCESS_EXIT))
        return min(verdicts)[1:] if verdicts else None

    def watch(self) -> None:
        """Check every `period` seconds until a rule above says stop, then end this process."""
        while (verdict := self.check(time.monotonic())) is None:
            time.sleep(self.period)
        why, status = verdict
        try:
            self.publish(STOPPED)
        except Exception:  # noqa: BLE001 - the service may be gone
            pass
        time.sleep(2 * self.period)  # the others report the same loss; an error here prints
        sys.stdout.flush()
        resume = ("; run the same command again on every host to resume from the last "
                  "checkpoint" if status == LOST_PROCESS_EXIT else "")
        print(f"error: {why}. Stopping process {self.process_id}{resume}", file=sys.stderr,
              flush=True)
        os._exit(status)  # from this thread: the main one may wait in a collective forever


def start(client, process_id: int, num_processes: int, timeout: float) -> Watchdog:
    """Watch the other processes from a daemon thread for the rest of this process's life."""
    global _running
    _running = Watchdog(client, process_id, num_processes, timeout)
    threading.Thread(target=_running.watch, name="reft-watchdog", daemon=True).start()
    return _running


def closing() -> None:
    """At exit: the run ended here, and process 0 closes the service once it ended everywhere
    (the signs go on meanwhile, so a process waiting for the others does not look lost)."""
    if _running is not None:
        _running.closing = True


def mark_failed() -> None:
    """Tell the other processes that this one's run raised, so they stop without waiting."""
    if _running is None:
        return
    _running.failed = True
    try:
        _running.publish()
    except Exception:  # noqa: BLE001 - the service may be what failed; the thread reports it
        pass
