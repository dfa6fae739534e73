"""Valid-chain accuracy for the synthetic price task: right answers for the right reason.

A right answer can come from wrong steps (a shortcut the answer-only reward also pays for), so
for data whose reasoning can be checked step by step the eval also reports, per model, the
share of test questions whose greedy output is correct AND a valid chain
(`price_chains.check_chain` accepts any valid path, not only the annotated one), and the share of
those valid chains that took another path than the question's annotation.
"""

from __future__ import annotations

from typing import Callable, Sequence

from reft_jax.data.price_chains import check_chain, is_annotated_path
from reft_jax.data.records import Example


def price_chain_hook(style: str) -> Callable[[Example, str], dict]:
    """Extra record columns: `valid_chain` (greedy answer right and chain valid) and
    `other_path` (valid, but not the annotated path's steps)."""
    def hook(example: Example, greedy_text: str) -> dict:
        check = check_chain(example.question, greedy_text, style)
        valid = check.valid  # a valid chain always ends at the right answer
        return {"valid_chain": valid,
                "other_path": valid and not is_annotated_path(example, greedy_text, style)}
    return hook


def chain_columns(records: Sequence[dict]) -> dict[str, float] | None:
    """{"valid_chain": % of questions, "other_path": % of the valid chains} of one model's
    records, or None when they carry no chain check."""
    checked = [r["extra"] for r in records if "valid_chain" in r.get("extra", {})]
    if not checked or len(checked) != len(records):
        return None
    valid = [e for e in checked if e["valid_chain"]]
    return {"valid_chain": round(100.0 * len(valid) / len(records), 2),
            "other_path": round(100.0 * sum(e["other_path"] for e in valid) / len(valid), 2)
            if valid else None}
