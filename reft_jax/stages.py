"""The stages a run can name in `config.stages`, and which of them are built.

A stage that is not built yet is listed with None: asking for it fails before any work starts,
so a run never pretends to have done something it cannot do.
"""

from __future__ import annotations

from typing import Callable

from reft_jax.check import run_check
from reft_jax.train.ppo import run_reft
from reft_jax.train.sft import run_sft

Stage = Callable[..., None]

STAGES: dict[str, Stage | None] = {
    "check": run_check,  # load the model and tokenizer, run them once, report
    "sft": run_sft,  # supervised warm-up
    "reft": run_reft,  # PPO on sampled reasoning
    "eval": None,  # greedy, voting and reranking accuracy
}


def describe() -> str:
    return ", ".join(f"{name} ({'built' if fn else 'not built yet'})" for name, fn in STAGES.items())
