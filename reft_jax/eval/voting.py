"""Majority voting and pass@k over sampled answers (host code, no jax).

The paper's Voting@100 votes over the answers extracted from 100 samples per question; pass@k
tells how often at least one of k samples is right, an upper bound for voting and reranking.
"""

from __future__ import annotations

from typing import Sequence

from reft_jax.rewards.answers import TOLERANCE, Answer


def _same(a: Answer, b: Answer) -> bool:
    """Numbers within TOLERANCE (the tolerance `is_correct` grades with) are one answer; option
    letters, and anything else, are one answer only when equal."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return abs(a - b) <= TOLERANCE
    return type(a) is type(b) and a == b


def vote_index(answers: Sequence[Answer | None]) -> int | None:
    """Index of the winning cluster's first member (see `majority_vote`); None when all are None.

    An index rather than the answer lets callers read that sample's `correct` flag: the voted
    answer is that sample's answer, so it is graded the same way.
    """
    clusters: list[list[int]] = []  # [index of the representative, votes]
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        for cluster in clusters:
            if _same(answers[cluster[0]], answer):
                cluster[1] += 1
                break
        else:
            clusters.append([i, 1])
    if not clusters:
        return None
    best = clusters[0]
    for cluster in clusters[1:]:
        if cluster[1] > best[1]:  # strict: on a tie the cluster that appeared first keeps the win
            best = cluster
    return best[0]


def majority_vote(answers: Sequence[Answer | None]) -> Answer | None:
    """The most frequent extracted answer; None answers (nothing extracted) do not vote.

    Numbers are clustered greedily in order of first appearance: an answer joins the first cluster
    whose representative (its first member) is within 1e-2, else it starts a new cluster, so
    3.0 and 3.004 are one vote. Letters vote by equality. Ties go to the cluster that appeared
    first in sample order, which makes the result deterministic. Returns the representative.
    """
    i = vote_index(answers)
    return None if i is None else answers[i]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k samples is correct) from n samples, c correct:
    1 - C(n-c, k) / C(n, k) (Chen et al. 2021), as a product so that n = 100 does not overflow."""
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n, got c={c}, n={n}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):  # C(n-c, k)/C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i)
        miss *= 1.0 - k / i
    return 1.0 - miss


def voting_accuracy_at_k(answers: Sequence[Sequence[Answer | None]],
                         correct: Sequence[Sequence[bool]], k: int) -> float:
    """Fraction of questions whose vote over their FIRST k samples is correct.

    ``answers[q][s]`` / ``correct[q][s]``: sample s of question q. A prefix, not an average over
    all k-subsets: deterministic and cheap, and it is what running the eval with k samples gives.
    A question whose first k samples have no answer counts as wrong.
    """
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} questions of answers but {len(correct)} of correct flags")
    if not answers:
        raise ValueError("voting accuracy of no questions")
    right = 0
    for q, (ans, ok) in enumerate(zip(answers, correct)):
        if len(ans) < k or len(ok) < k:
            raise ValueError(f"question {q}: {min(len(ans), len(ok))} samples, fewer than k={k}")
        i = vote_index(ans[:k])
        right += i is not None and bool(ok[i])
    return right / len(answers)
