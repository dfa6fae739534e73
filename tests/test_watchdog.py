"""The watchdog's rules (reft_jax/parallel/watchdog.py) on a stand-in for the coordination
service's key-value store; tests/test_multi_host.py kills a real process."""

from __future__ import annotations

import pytest

from reft_jax.config import default_config
from reft_jax.config_check import check_values
from reft_jax.errors import ReftError
from reft_jax.parallel import watchdog
from reft_jax.parallel.watchdog import LOST_PROCESS_EXIT, STOPPED, Watchdog


class Store:
    """The two calls the watchdog makes, on a dict; `down` makes them fail as when process 0,
    which runs the service, is gone."""

    def __init__(self):
        self.values, self.down = {}, False

    def key_value_set(self, key, value, allow_overwrite=False):
        if self.down:
            raise RuntimeError("UNAVAILABLE: Socket closed\nmore detail")
        self.values[key] = value

    def key_value_dir_get(self, prefix):
        if self.down:
            raise RuntimeError("UNAVAILABLE: Socket closed")
        return [(k, v) for k, v in self.values.items() if k.startswith(prefix)]


def watchdogs(count=2, timeout=10.0):
    store = Store()
    return store, [Watchdog(store, i, count, timeout) for i in range(count)]


def test_a_process_is_lost_only_after_its_sign_stops_moving_for_the_timeout():
    _, (first, second) = watchdogs()
    for now in range(0, 30, 2):  # both alive: any gap between checks is fine
        assert first.check(now) is None and second.check(now + 1) is None
    assert first.check(30) is None  # sees second's last sign, published at 29
    assert first.check(39.9) is None
    why, status = first.check(40)
    assert status == LOST_PROCESS_EXIT
    assert why.startswith("lost process 1 of 2: no sign of life for 10 s")


def test_a_process_that_never_signs_is_lost_after_the_timeout():
    _, (first, _) = watchdogs()
    assert first.check(0) is None and first.check(9) is None
    assert first.check(10)[0].startswith("lost process 1 of 2")


def test_an_error_on_one_process_stops_the_others_but_not_one_that_failed_too():
    _, (first, second) = watchdogs()
    first.check(0), second.check(0)
    second.failed = True
    second.check(1)
    assert first.check(2) == ("process 1 of 2 stopped with an error (its own output says which)",
                              LOST_PROCESS_EXIT)
    first.failed = True  # a non-finite loss stops every process: they end together as usual
    first.check(3)
    assert second.check(4) is None and first.check(5) is None


def test_a_process_that_stopped_ends_the_rest_and_a_failed_one_with_its_own_status():
    _, (first, second) = watchdogs()
    second.check(0)
    first.publish(STOPPED)
    assert second.check(1) == ("process 0 of 2 stopped after losing another process",
                               LOST_PROCESS_EXIT)
    second.failed = True
    assert second.check(2) == ("the other processes stopped after this process's error", 1)


def test_a_loss_is_named_before_a_process_that_stopped_because_of_it():
    _, (first, second, third) = watchdogs(count=3)
    for now in (0, 1):
        first.check(now), second.check(now), third.check(now)
    first.check(2)  # sees second's last sign
    third.publish(STOPPED)  # third noticed second's loss first
    why, status = first.check(12)
    assert why.startswith("lost process 1 of 3") and status == LOST_PROCESS_EXIT


def test_losing_the_coordination_service_names_process_0():
    store, (_, second) = watchdogs()
    second.check(0)
    store.down = True
    assert second.check(1) == ("lost process 0 (the coordinator): UNAVAILABLE: Socket closed",
                               LOST_PROCESS_EXIT)


def test_the_service_closing_at_the_end_of_a_run_is_not_a_loss():
    store, (_, second) = watchdogs()
    second.check(0)
    second.closing = True  # at exit; process 0 closes the service once every process is there
    store.down = True
    assert second.check(1) is None


def test_mark_failed_tells_the_others_at_once(monkeypatch):
    _, (first, second) = watchdogs()
    first.check(0), second.check(0)
    monkeypatch.setattr(watchdog, "_running", second)
    watchdog.mark_failed()
    assert second.failed
    assert first.check(1)[0].startswith("process 1 of 2 stopped with an error")


def test_mark_failed_without_a_watchdog_does_nothing(monkeypatch):
    monkeypatch.setattr(watchdog, "_running", None)
    watchdog.mark_failed()  # one process: nothing to tell


def test_the_timeout_is_checked():
    config = default_config()
    config.distributed.heartbeat_timeout_s = 0
    with pytest.raises(ReftError, match=r"config.distributed.heartbeat_timeout_s=0 must be >= 1"):
        check_values(config)
