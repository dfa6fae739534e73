"""Where a run's numbers go: a progress bar, metrics.jsonl, TensorBoard, and a PNG at the end."""

from __future__ import annotations

import json
import math
import pathlib


class MetricsLog:
    """Appends one JSON object per record; a resumed run keeps appending to the same file."""

    def __init__(self, workdir: pathlib.Path, total_steps: int, initial_step: int = 0,
                 enabled: bool = True):
        from tensorboardX import SummaryWriter
        from tqdm import tqdm

        self.enabled = enabled  # off on every process of a multi-process run but the first
        if not enabled:
            return
        self.path = workdir / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(workdir / "tensorboard"))
        self.bar = tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True)

    def write(self, step: int, kind: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": step, "kind": kind, **{k: float(v) for k, v in values.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for name, value in values.items():
            if math.isfinite(float(value)):
                self.writer.add_scalar(f"{kind}/{name}", float(value), step)
        if kind == "train":
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['learning_rate']:.2e}")
        else:
            self.bar.write(f"step {step} {kind}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))

    def close(self) -> None:
        if not self.enabled:
            return
        self.bar.close()
        self.writer.close()


def read_metrics(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_metrics(metrics_path: pathlib.Path, out_path: pathlib.Path) -> pathlib.Path:
    """Training loss and evaluation accuracy over steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] != "train" and "accuracy" in r]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    ax_loss.set(xlabel="step", ylabel="loss", title="training loss")
    for kind in sorted({r["kind"] for r in evals}):
        points = [r for r in evals if r["kind"] == kind]
        ax_acc.plot([r["step"] for r in points], [r["accuracy"] for r in points], "o-", label=kind)
    ax_acc.set(xlabel="step", ylabel="accuracy", title="greedy accuracy", ylim=(0, 1))
    if evals:
        ax_acc.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
