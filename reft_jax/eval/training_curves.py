"""Held-out (validation) accuracy over training for SFT and the RL stages, on one epoch axis.

The paper's claim in one picture: ReFT branches off SFT at its warm-up epoch and is compared
with SFT trained on for as long. SFT's curve comes from `sft/validation.json`; each RL stage's
from the validation rows of its `metrics.jsonl` (one per RL epoch), shifted by the SFT epoch it
started from (`<stage>/warmup.json`, written by the RL stage). Validation only: the test split
is evaluated once, at the end, and never drawn over training.
"""

from __future__ import annotations

import json
import os
import pathlib
import re

RL_STAGES = ("reft", "online_sl")
WARMUP_RECORD = "warmup.json"


def warmup_record(warmup: pathlib.Path, workdir: pathlib.Path) -> dict:
    """What an RL stage started from: the folder and, when it is an SFT epoch of this workdir
    (`sft/epoch_<n>`), that epoch n; otherwise None (an outside checkpoint)."""
    match = re.fullmatch(r"epoch_(\d+)", warmup.name)
    in_run = match and warmup.resolve().parent == (workdir / "sft").resolve()
    return {"folder": str(warmup), "sft_epoch": int(match.group(1)) if in_run else None}


def training_curves(workdir: pathlib.Path) -> dict[str, tuple[list[int], list[float]]]:
    """{name: (total epochs, validation accuracy)} of `sft` and each RL stage that ran."""
    curves = {}
    ledger = workdir / "sft" / "validation.json"
    if ledger.exists():
        points = sorted((int(e), a) for e, a in json.loads(ledger.read_text()).items()
                        if a is not None)
        curves["sft"] = ([e for e, _ in points], [a for _, a in points])
    for stage in RL_STAGES:
        metrics, record = workdir / stage / "metrics.jsonl", workdir / stage / WARMUP_RECORD
        if not metrics.exists():
            continue
        start = json.loads(record.read_text()).get("sft_epoch") if record.exists() else None
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        accuracies = [r["accuracy"] for r in rows if r.get("kind") == "validation"]
        if not accuracies:
            continue
        epochs = list(range(1, len(accuracies) + 1))
        if start is not None:
            epochs = [start + e for e in epochs]
            if "sft" in curves and start in curves["sft"][0]:  # the branch point itself
                epochs.insert(0, start)
                accuracies.insert(0, curves["sft"][1][curves["sft"][0].index(start)])
        curves[stage] = (epochs, accuracies)
    return curves


def plot_training_curves(curves: dict[str, tuple[list[int], list[float]]],
                         path: str | os.PathLike) -> None:
    """The curves as percent over total epochs (SFT epochs + RL epochs), written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (epochs, accuracies) in curves.items():
        ax.plot(epochs, [100 * a for a in accuracies], "-o", markersize=3, label=name)
    ax.set_xlabel("epochs (SFT warm-up + RL)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("held-out accuracy over training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
