"""The ReFT reward: 1 for a correct final answer, a partial reward for a wrong one, 0 for none.

MathQA multiple choice (decision): the partial reward goes only to a wrong but well-formed option
letter (a-e), the same rule as for numbers; an output with no letter gets 0. The reference code gives
0.1 to every wrong MCQ output, malformed ones included, which pays the policy for not answering as much
as for a wrong answer. ``choice_partial_reward`` sets the MCQ value separately (default: the same as
``partial_reward``) and ``partial_for_malformed_choice=True`` restores the reference behaviour.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from reft_jax.data.prompts import program_header
from reft_jax.data.records import CHOICE, NL, DataError, Example, check_style
from reft_jax.rewards.answers import Answer, extract_nl, from_program, is_correct
from reft_jax.rewards.sandbox import SandboxPool, run_programs

PRELUDE = "import math\nimport sympy\n"


def _run_defaults() -> tuple[float, float]:
    """(reft.partial_reward, eval.program_timeout) of `default_config()`: the defaults live there."""
    from reft_jax.config import default_config  # noqa: PLC0415 - ml_collections only

    c = default_config()
    return float(c.reft.partial_reward), float(c.eval.program_timeout)


_PARTIAL_REWARD, _PROGRAM_TIMEOUT = _run_defaults()


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    partial_reward: float = _PARTIAL_REWARD  # config.reft.partial_reward (the paper's); 0 disables
    choice_partial_reward: float | None = None  # None: same as partial_reward
    partial_for_malformed_choice: bool = False  # True: the reference code's MCQ rule
    timeout: float = _PROGRAM_TIMEOUT  # config.eval.program_timeout: seconds per program

    @classmethod
    def from_config(cls, config) -> RewardConfig:
        """The reward a run's config asks for (reft.partial_reward, eval.program_timeout)."""
        return cls(partial_reward=float(config.reft.partial_reward),
                   timeout=float(config.eval.program_timeout))


def complete_program(completion: str, question: str) -> str:
    """What the sandbox runs for a P-CoT completion (the body after the header), as the reference
    does: header rebuilt from the question, cut at the first blank line, math and sympy imported."""
    kept = []
    for line in (program_header(question) + completion).split("\n"):
        if not line.strip():
            break
        kept.append(line)
    return PRELUDE + "\n".join(kept)


def extract_answers(
    completions: list[str], examples: list[Example], style: str, timeout: float = _PROGRAM_TIMEOUT,
    pool: SandboxPool | None = None,
) -> list[Answer | None]:
    """One extracted answer (or None) per completion; programs run in the sandbox, batched."""
    if len(completions) != len(examples):
        raise DataError(f"{len(completions)} completions but {len(examples)} examples")
    check_style(style)
    if style == NL:
        return [extract_nl(c, ex.answer_type) for c, ex in zip(completions, examples)]
    programs = [complete_program(c, ex.question) for c, ex in zip(completions, examples)]
    values = run_programs(programs, timeout=timeout, pool=pool)
    return [from_program(v, ex.answer_type) for v, ex in zip(values, examples)]


def score(pred: Answer | None, example: Example, config: RewardConfig) -> float:
    """1 if correct, the partial reward if an answer was extracted but is wrong, else 0."""
    if is_correct(pred, example):
        return 1.0
    partial = config.partial_reward
    if example.answer_type == CHOICE:
        partial = config.choice_partial_reward if config.choice_partial_reward is not None else partial
        if config.partial_for_malformed_choice:
            return partial
    return partial if pred is not None else 0.0


class Judged(NamedTuple):
    """What the host learns from one completion."""

    reward: float  # the ReFT reward: 1, the partial reward, or 0
    correct: bool  # the extracted answer matches the gold one
    extractable: bool  # an answer could be extracted at all
    answer: Answer | None


def judge(
    completions: list[str], examples: list[Example], style: str, config: RewardConfig | None = None,
    pool: SandboxPool | None = None,
) -> list[Judged]:
    """Reward, correctness and extractability of each completion, from one extraction pass."""
    config = config if config is not None else RewardConfig()
    preds = extract_answers(completions, examples, style, timeout=config.timeout, pool=pool)
    return [Judged(score(p, ex, config), is_correct(p, ex), p is not None, p)
            for p, ex in zip(preds, examples)]


def reward_fn(
    completions: list[str], examples: list[Example], style: str, config: RewardConfig | None = None,
    pool: SandboxPool | None = None,
) -> list[float]:
    """One reward per completion (``style`` ``"nl"`` or ``"program"``; a program completion is the
    text after the prompt, header excluded)."""
    return [j.reward for j in judge(completions, examples, style, config, pool)]
