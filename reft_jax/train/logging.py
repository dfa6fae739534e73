"""Where a run's numbers go: a progress bar, metrics.jsonl, TensorBoard, and a PNG at the end."""

from __future__ import annotations

import json
import math
import pathlib


class MetricsLog:
    """Appends one JSON object per record; a resumed run keeps appending to the same file."""

    def __init__(self, workdir: pathlib.Path, total_steps: int, initial_step: int = 0,
                 enabled: bool = True, postfix: tuple[str, ...] = ("loss", "learning_rate")):
        from tensorboardX import SummaryWriter
        from tqdm import tqdm

        self.enabled = enabled  # off on every process of a multi-process run but the first
        self.postfix = postfix  # the train values shown beside the progress bar
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
            self.bar.set_postfix({k: f"{float(values[k]):.4g}" for k in self.postfix if k in values})
        else:
            self.bar.write(f"step {step} {kind}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))

    def close(self) -> None:
        if not self.enabled:
            return
        self.bar.close()
        self.writer.close()


def read_metrics(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_metrics(metrics_path: pathlib.Path, out_path: pathlib.Path,
                 train_keys: tuple[str, ...] = ("loss",), eval_key: str = "accuracy") -> pathlib.Path:
    """One panel per training value in `train_keys` over steps, and one of `eval_key` for every
    evaluation kind (validation, test), as a PNG. Keys a run never wrote are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] != "train" and eval_key in r]
    keys = [k for k in train_keys if any(k in r for r in train)]
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(5.5 * (len(keys) + 1), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [r for r in train if key in r]
        ax.plot([r["step"] for r in points], [r[key] for r in points], lw=1)
        ax.set(xlabel="step", ylabel=key, title=f"training {key}")
    ax_acc = axes[0][-1]
    for kind in sorted({r["kind"] for r in evals}):
        points = [r for r in evals if r["kind"] == kind]
        ax_acc.plot([r["step"] for r in points], [r[eval_key] for r in points], "o-", label=kind)
    ax_acc.set(xlabel="step", ylabel=eval_key, title=f"greedy {eval_key}", ylim=(0, 1))
    if evals:
        ax_acc.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
