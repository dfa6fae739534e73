"""The run loop every training stage shares: resume, periodic save, stop requests, the
non-finite stop, progress and metrics.

A stage hands in a step, `step(state, position) -> (state, metrics)`, that does one unit of work
(an SFT batch, a PPO iteration) and reports `finite`; and a hook for the end of each epoch
(export, evaluate). Running the same command again resumes from the latest checkpoint: the state,
the position (epoch, unit within it, units done) and the stage's own resumable values
(`loop.extra`) come back, so a stage whose data order and random draws depend only on the seed
and the position ends an interrupted run exactly as an uninterrupted one. SIGTERM to any process
saves and returns; a non-finite step raises and leaves the last good checkpoint in place. An
error on one process of several tells the others to stop (`parallel.watchdog`).
"""

from __future__ import annotations

import dataclasses
import pathlib
import signal
from typing import Any, Callable

from reft_jax.errors import ReftError
from reft_jax.parallel import watchdog
from reft_jax.parallel.hosts import any_process
from reft_jax.train.checkpointing import Checkpointer
from reft_jax.train.logging import MetricsLog


_stopped_early = False


def stopped_early() -> bool:
    """Whether a run loop of this process stopped before its end (SIGTERM, stop_after_step):
    `main` then runs no later stage, which would build on an unfinished one."""
    return _stopped_early


class StopRequest:
    """Turns SIGTERM into a flag the loop checks between steps."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self._previous)


@dataclasses.dataclass
class Position:
    epoch: int = 0  # epochs finished
    index: int = 0  # units done within the current epoch
    step: int = 0  # units done in all


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    stage: str  # names the folder under the workdir and the config section in messages
    epochs: int
    steps_per_epoch: int
    save_every: int = 0
    keep: int = 3
    stop_after_step: int = 0  # > 0: save and return at this step (time-boxed jobs)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


StepFn = Callable[[Any, Position], tuple[Any, dict]]
EpochHook = Callable[[Any, int], None]


class RunLoop:
    """Drives a stage's step over epochs; `with RunLoop(...) as loop:` closes files and checkpoints.

    `identity` holds what must match for a checkpoint to be resumed (seed, dataset size...):
    a checkpoint of another run in the same folder is an error, not a silent mix.
    """

    def __init__(self, directory: pathlib.Path, settings: LoopSettings, identity: dict,
                 log=print, primary: bool = True, postfix: tuple[str, ...] = ("loss",)):
        self.directory, self.settings, self.identity = directory, settings, dict(identity)
        self.log, self.primary, self.postfix = log, primary, postfix
        self.ckpt = Checkpointer(directory / "checkpoints", settings.keep, settings.save_every)
        self.position = Position()
        self.extra: dict = {}  # a stage's resumable values, saved in every checkpoint's meta
        self.metrics: MetricsLog | None = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is not None:  # an error on this process alone: the others must not wait on it
            watchdog.mark_failed()
        if self.metrics is not None:
            self.metrics.close()
        self.ckpt.close()

    def start(self, state):
        """The latest checkpoint's state (and position, extra values), or `state` when none;
        opens the metrics log."""
        if self.ckpt.latest_step() is not None:
            state, meta = self.ckpt.restore(state)
            mismatch = [k for k, v in self.identity.items() if meta.get(k) != v]
            if mismatch:
                raise ReftError(
                    f"{self.ckpt.directory} holds a run with other settings ({', '.join(mismatch)}: "
                    f"{[meta.get(k) for k in mismatch]} there, {[self.identity[k] for k in mismatch]} "
                    "now); use a new workdir or the same settings")
            self.position = Position(meta["epoch"], meta["index"], meta["step"])
            self.extra = dict(meta.get("extra", {}))
            p = self.position
            self.log(f"resuming from step {p.step} (epoch {p.epoch + 1}, step {p.index} in it)")
        self.metrics = MetricsLog(self.directory, self.settings.total_steps, self.position.step,
                                  enabled=self.primary, postfix=self.postfix)
        return state

    def save(self, state) -> None:
        p = self.position
        self.ckpt.save(p.step, state, {"epoch": p.epoch, "index": p.index, "step": p.step,
                                       "extra": self.extra, **self.identity})

    def run(self, state, step: StepFn, end_of_epoch: EpochHook | None = None) -> tuple[Any, bool]:
        """(state, finished): finished is False when a stop request or stop_after_step ended
        the run early (a checkpoint was saved; the same command resumes)."""
        s, p = self.settings, self.position
        with StopRequest() as stop:
            while p.epoch < s.epochs:
                while p.index < s.steps_per_epoch:
                    new_state, metrics = step(state, p)
                    if not metrics.get("finite", 1.0):
                        raise ReftError(
                            f"non-finite loss or gradient at step {p.step + 1}; stopped. The last "
                            f"good checkpoint (step {self.ckpt.latest_step()}) is in "
                            f"{self.ckpt.directory}")
                    state, p.step, p.index = new_state, p.step + 1, p.index + 1
                    self.metrics.write(p.step, "train", metrics)
                    if self.ckpt.due(p.step):
                        self.save(state)
                    stop_here = s.stop_after_step > 0 and p.step >= s.stop_after_step
                    terminated = any_process(stop.requested)  # a SIGTERM to any process stops all
                    if terminated or stop_here:
                        global _stopped_early
                        _stopped_early = True
                        self.save(state)
                        why = "SIGTERM" if terminated else f"{s.stage}.stop_after_step={s.stop_after_step}"
                        self.log(f"stopped at step {p.step} ({why}); checkpoint saved, run again "
                                 "to resume")
                        return state, False
                p.epoch, p.index = p.epoch + 1, 0
                if end_of_epoch is not None:  # before the save, which then records its choices
                    end_of_epoch(state, p.epoch)
                self.save(state)
        return state, True
