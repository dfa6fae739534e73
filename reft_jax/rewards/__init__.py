"""Answers and rewards: extraction, comparison, the program sandbox and the ReFT reward.

Plain host code: imports nothing from models, training or jax. See README.md in this folder.
"""

from reft_jax.rewards.answers import extract_choice, extract_nl, from_program, gold_answer, is_correct
from reft_jax.rewards.reward import (Judged, RewardConfig, complete_program, extract_answers, judge,
                                     reward_fn, score)
from reft_jax.rewards.sandbox import (
    DEFAULT_TIMEOUT,
    SandboxError,
    SandboxPool,
    run_programs,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Judged",
    "RewardConfig",
    "SandboxError",
    "SandboxPool",
    "complete_program",
    "extract_answers",
    "extract_choice",
    "extract_nl",
    "from_program",
    "gold_answer",
    "is_correct",
    "judge",
    "reward_fn",
    "run_programs",
    "score",
]
