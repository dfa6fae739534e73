"""Binary-classifier metrics for the reward model: accuracy and ROC AUC (numpy, no jax).

AUC is the probability that a randomly chosen positive scores above a randomly chosen negative
(ties count one half): the Mann-Whitney U statistic from average ranks. It is what reranking
needs, since a reranker only ever compares scores and never thresholds them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def binary_accuracy(probs: Sequence[float], labels: Sequence[bool], threshold: float = 0.5) -> float:
    """Share of sequences whose `probs > threshold` equals the label."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, bool)
    if probs.shape != labels.shape:
        raise ValueError(f"{probs.shape} scores but {labels.shape} labels")
    if probs.size == 0:
        raise ValueError("accuracy of no sequences")
    return float(np.mean((probs > threshold) == labels))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values` in ascending order, tied values sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2.0 + 1.0  # mean of ranks start+1..end+1
        start = end + 1
    return ranks


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve; None when only one class is present (it is undefined)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.shape} scores but {labels.shape} labels")
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return None
    rank_sum = average_ranks(scores)[labels].sum()
    u = rank_sum - positives * (positives + 1) / 2.0  # pairs (positive, negative) ordered right
    return float(u / (positives * negatives))
