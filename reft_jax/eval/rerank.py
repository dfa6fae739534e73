"""Reranking: pick the sample a reward model trusts most (host code, no jax).

The paper's Rerank@100 picks, among the samples with a valid answer, the one whose reward-model
probability of being correct is highest.
"""

from __future__ import annotations

from typing import Sequence

from reft_jax.rewards.answers import Answer


def rerank_pick(answers: Sequence[Answer | None], scores: Sequence[float | None]) -> int | None:
    """Index of the highest-scoring sample among those with an extracted answer and a score.

    A sample without an answer cannot be right, so it is never picked however high its score.
    Ties go to the earliest index (deterministic). None when no sample has both an answer and
    a score.
    """
    if len(answers) != len(scores):
        raise ValueError(f"{len(answers)} answers but {len(scores)} scores")
    best = None
    for i, (answer, score) in enumerate(zip(answers, scores)):
        if answer is None or score is None:
            continue
        if best is None or score > scores[best]:
            best = i
    return best
