"""The stages a run can name in `config.stages`, and which of them are built.

A stage that is not built yet is listed with None: asking for it fails before any work starts,
so a run never pretends to have done something it cannot do.
"""

from __future__ import annotations

from typing import Callable

from reft_jax.check import run_check
from reft_jax.eval.stage import run_eval
from reft_jax.init_stage import run_init
from reft_jax.train.offline_sl import run_offline_sl
from reft_jax.train.online_sl import run_online_sl
from reft_jax.train.ppo import run_reft
from reft_jax.train.reward_model import run_reward_model
from reft_jax.train.sft import run_sft

Stage = Callable[..., None]

STAGES: dict[str, Stage | None] = {
    "check": run_check,  # load the model and tokenizer, run them once, report
    "init": run_init,  # model.source="scratch": a corpus tokenizer and a random small model
    "sft": run_sft,  # supervised warm-up
    "reft": run_reft,  # PPO on sampled reasoning
    "online_sl": run_online_sl,  # baseline: supervised steps on own correct samples + gold
    "offline_sl": run_offline_sl,  # baseline: SFT on gold + the warm-up's correct samples
    "rm": run_reward_model,  # the reranker's reward model
    "eval": run_eval,  # Top-1, Voting@k, Rerank@k, pass@k of each model
}


def describe() -> str:
    return ", ".join(f"{name} ({'built' if fn else 'not built yet'})" for name, fn in STAGES.items())
