"""Predictions file -> the paper's table and accuracy-vs-k curves (host code, no jax).

One JSON line per (model, question), written as the eval goes so a killed run can resume::

    {"model": str, "id": str, "gold": str,
     "greedy": {"answer": a, "correct": bool},
     "samples": [{"answer": a, "correct": bool, "rm_score": float | None}, ...],
     "voted": {"answer": a, "correct": bool},
     "reranked": {"answer": a, "correct": bool} | None}

``a`` is a number, an option letter, or null when nothing could be extracted. Accuracies are in
percent, rounded to 2 decimals, as the paper prints them.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Iterable, Sequence

from reft_jax.data.jsonio import field, parse_object, read_jsonl
from reft_jax.eval.chains import chain_columns
from reft_jax.eval.voting import pass_at_k, voting_accuracy_at_k

Key = tuple[str, str]  # (model, question id)


def _by_model(records: Iterable[dict], k: int) -> dict[str, list[dict]]:
    """Records grouped by model in order of first appearance; every question needs >= k samples."""
    groups: dict[str, list[dict]] = {}
    seen: set[Key] = set()
    for r in records:
        key = (r["model"], r["id"])
        if key in seen:
            raise ValueError(f"model {key[0]!r}, question {key[1]!r}: more than one record")
        seen.add(key)
        if len(r["samples"]) < k:
            raise ValueError(f"model {key[0]!r}, question {key[1]!r}: {len(r['samples'])} samples, "
                             f"fewer than k={k}")
        groups.setdefault(r["model"], []).append(r)
    return groups


def _percent(values: Sequence[float]) -> float:
    return round(100.0 * sum(values) / len(values), 2)


def _mean_pass_at_k(recs: list[dict], k: int) -> float:
    return _percent([pass_at_k(len(r["samples"]), sum(bool(s["correct"]) for s in r["samples"]), k)
                     for r in recs])


def summarize(records: Sequence[dict], k: int) -> list[dict]:
    """One row per model (order of first appearance), accuracies in percent.

    top1 / voting / rerank come from each record's stored ``greedy`` / ``voted`` / ``reranked``
    grades, i.e. over all the samples the eval drew; pass@1 and pass@k are the unbiased estimator
    with n = that record's number of samples. rerank is None for a model with no rm_score at all
    (no reward model); otherwise a question whose ``reranked`` is None counts as wrong.
    """
    rows = []
    for model, recs in _by_model(records, k).items():
        has_rm = any(s.get("rm_score") is not None for r in recs for s in r["samples"])
        rows.append({
            "model": model,
            "top1": _percent([bool(r["greedy"]["correct"]) for r in recs]),
            "voting": _percent([bool(r["voted"]["correct"]) for r in recs]),
            "rerank": _percent([bool(r["reranked"] and r["reranked"]["correct"]) for r in recs])
            if has_rm else None,
            "pass@1": _mean_pass_at_k(recs, 1),
            "pass@k": _mean_pass_at_k(recs, k),
            "extractable": _percent([r["greedy"]["answer"] is not None for r in recs]),
            "n_questions": len(recs),
            **(chain_columns(recs) or {}),
        })
    return rows


def format_table(rows: Sequence[dict], k: int) -> str:
    """A plain-text table like the paper's: one line per model, a dash where a value is None."""
    columns = [("Top-1", "top1"), (f"Voting@{k}", "voting"), (f"Rerank@{k}", "rerank"),
               (f"pass@{k}", "pass@k"), ("extractable", "extractable")]
    if any("valid_chain" in row for row in rows):  # tasks whose chains can be checked
        columns += [("valid chain", "valid_chain"), ("other path", "other_path")]
    header = ["model"] + [title for title, _ in columns]
    body = [[row["model"]] + ["-" if row.get(key) is None else f"{row[key]:.2f}" for _, key in columns]
            for row in rows]
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    return "\n".join(
        "  ".join([line[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(line[1:], widths[1:])])
        for line in [header] + body)


def powers_of_two(k: int) -> list[int]:
    """1, 2, 4, ... up to k, with k itself last even when it is not a power of two."""
    ks = [1]
    while ks[-1] * 2 <= k:
        ks.append(ks[-1] * 2)
    return ks if ks[-1] == k else ks + [k]


def accuracy_vs_k(records: Sequence[dict], ks: Sequence[int]) -> dict[str, dict[str, list]]:
    """Per model, voting over the first k samples and mean pass@k, in percent, for each k."""
    groups = _by_model(records, max(ks))
    curves = {}
    for model, recs in groups.items():
        answers = [[s["answer"] for s in r["samples"]] for r in recs]
        correct = [[bool(s["correct"]) for s in r["samples"]] for r in recs]
        curves[model] = {
            "k": list(ks),
            "voting": [round(100.0 * voting_accuracy_at_k(answers, correct, k), 2) for k in ks],
            "pass@k": [_mean_pass_at_k(recs, k) for k in ks],
        }
    return curves


def plot_accuracy_vs_k(curves: dict[str, dict[str, list]], path: str | os.PathLike) -> None:
    """Accuracy (%) against k on a log2 axis: voting solid, pass@k dashed, one colour per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ks_all: set[int] = set()
    for i, (model, c) in enumerate(curves.items()):
        color = f"C{i % 10}"
        ax.plot(c["k"], c["voting"], "-o", color=color, label=f"{model} voting")
        ax.plot(c["k"], c["pass@k"], "--s", color=color, label=f"{model} pass@k")
        ks_all.update(c["k"])
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(ks_all), [str(k) for k in sorted(ks_all)])
    ax.set_xlabel("k (samples per question)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def read_predictions(path: str | os.PathLike) -> list[dict]:
    """All records of a predictions file; a malformed line raises (a ValueError) naming the file
    and line, a truncated last line included: summarizing a half-written file should be loud."""
    records = []
    for lineno, obj in read_jsonl(pathlib.Path(path)):
        where = f"{path}:{lineno}"
        field(obj, "model", where)
        field(obj, "id", where)
        records.append(obj)
    return records


def completed(path: str | os.PathLike) -> set[Key]:
    """(model, id) of every record already written, for resuming an eval.

    A record counts once its newline is written: an unterminated last line (the eval was killed
    mid-write) is ignored, not an error, and that question is simply done again. A malformed line
    before it is still an error naming the file and line. A missing file means nothing is done.
    """
    path = pathlib.Path(path)
    if not path.exists():
        return set()
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]  # the last piece is unterminated
    done = set()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        obj = parse_object(line, where)
        done.add((field(obj, "model", where), field(obj, "id", where)))
    return done


class PredictionWriter:
    """Appends one JSON line per record and flushes it, so a killed eval loses at most the record
    being written (flush reaches the OS, which outlives the process; no fsync against power loss).

    On opening, an unterminated last line left by a kill is cut off, so the next record does not
    glue onto it; `completed` already ignores it, so that question is redone.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self._done = completed(self.path)
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self.path, "r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
        self._file = open(self.path, "a", encoding="utf-8")

    def done_keys(self) -> set[Key]:
        """(model, id) already in the file, those written through this writer included."""
        return set(self._done)

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        self._done.add((record["model"], record["id"]))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
