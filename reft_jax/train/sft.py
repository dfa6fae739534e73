"""The SFT warm-up stage: train on (question, reasoning) pairs, evaluate, checkpoint, resume.

Running the same command again resumes from the latest checkpoint: the train state, the data
position (epoch and batch within it) and the seed all come back, so an interrupted run ends
with the same parameters as an uninterrupted one. SIGTERM saves a checkpoint and exits 0; a
non-finite loss stops the run with an error and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Sequence

import jax
import numpy as np

from reft_jax.data.batching import Encoded, SFTBatches, encode_all
from reft_jax.models import load_pretrained, save_pretrained
from reft_jax.models.transformer import apply_remat
from reft_jax.parallel.hosts import is_primary
from reft_jax.train.logging import plot_metrics
from reft_jax.train.loop import LoopSettings, RunLoop
from reft_jax.train.placement import Placement
from reft_jax.train.sft_step import make_sft_step
from reft_jax.train.state import create_train_state, gathered_model, make_optimizer
from reft_jax.train.validation import evaluate_split, test_examples, train_and_validation


def epoch_folder(workdir: pathlib.Path, epoch: int, stage: str = "sft") -> pathlib.Path:
    """Where the model after `epoch` (1-based) is exported; name it as the ReFT warm-up start."""
    return workdir / stage / f"epoch_{epoch}"


def record_validation(stage_dir: pathlib.Path, epoch: int, result: dict | None,
                      best: bool) -> None:
    """`validation.json` (every evaluated epoch's accuracy, which `reft.warmup_min_accuracy`
    reads) and `best.json` (the epoch with the best validation accuracy so far, the latest when
    there is no validation split), which later stages and `stages=eval` read as "the SFT
    model"."""
    accuracy = None if result is None else result["accuracy"]
    ledger_path = stage_dir / "validation.json"
    ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
    ledger[str(epoch)] = accuracy
    ledger_path.write_text(json.dumps(ledger) + "\n")
    if best:
        record = {"epoch": epoch, "folder": f"epoch_{epoch}", "validation_accuracy": accuracy}
        (stage_dir / "best.json").write_text(json.dumps(record) + "\n")


def validation_ledger(workdir: pathlib.Path) -> dict[int, float | None]:
    """{epoch: validation accuracy} of the SFT run's evaluated epochs."""
    path = workdir / "sft" / "validation.json"
    return {int(k): v for k, v in json.loads(path.read_text()).items()} if path.exists() else {}


def best_epoch_folder(workdir: pathlib.Path) -> pathlib.Path | None:
    """The SFT epoch folder chosen on validation, or None before any epoch was evaluated."""
    path = workdir / "sft" / "best.json"
    if not path.exists():
        return None
    return workdir / "sft" / json.loads(path.read_text())["folder"]


def run_sft(config, log=print, stage: str = "sft", extra: Sequence[Encoded] = (),
            epochs: int | None = None) -> pathlib.Path:
    """Train, evaluate each epoch on the validation split, test once at the end.

    Over several processes every process runs this same loop; process 0 alone logs and writes
    the metrics and the exported models, and each process evaluates its share of the examples.
    """
    c, d = config.sft, config.data
    primary = is_primary()
    log = log if primary else (lambda *_: None)
    workdir = pathlib.Path(config.workdir)
    model, tokenizer = load_pretrained(config.model.source, dtype=config.model.dtype,
                                       param_dtype=config.model.param_dtype)
    apply_remat(model, config.model)  # recompute layers in the backward pass: less memory
    train, validation = train_and_validation(config)
    test = test_examples(config)  # read now: a dataset without a test split fails before work
    encoded = encode_all(train, tokenizer, d.style, c.max_length, d.chat_template, log)
    encoded += [e for e in extra if len(e.ids) <= c.max_length]  # offline self-training's samples
    epochs = epochs if epochs is not None else c.epochs
    batches = SFTBatches(encoded, c.batch_size, c.grad_accum, config.seed, tokenizer.pad_token_id)
    total_steps = epochs * batches.steps_per_epoch
    optimizer, _ = make_optimizer(c.learning_rate, total_steps, c.warmup_ratio, c.weight_decay,
                                  c.adam_eps, c.grad_clip)
    graphdef, state = create_train_state(model, optimizer)
    placement = Placement.for_run(config.mesh, model, state, c.batch_size // c.grad_accum)
    state = placement.put_state(state)
    del model
    step_fn = make_sft_step(graphdef, optimizer, c.grad_accum, placement)
    settings = LoopSettings(stage, epochs, batches.steps_per_epoch, c.save_every_steps,
                            c.keep_checkpoints, c.stop_after_step)
    identity = {"seed": config.seed, "steps_per_epoch": batches.steps_per_epoch}
    stage_dir = workdir / stage

    def train_step(state, position):
        start = time.perf_counter()
        batch = batches.make_batch(batches.epoch_order(position.epoch)[position.index])
        state, metrics = step_fn(state, placement.put_batch(batch))
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        metrics["tokens_per_s"] = float(np.sum(batch["attention_mask"])) / (
            time.perf_counter() - start)
        return state, metrics

    with RunLoop(stage_dir, settings, identity, log, primary,
                 postfix=("loss", "learning_rate")) as loop:

        def evaluate(kind, split_examples, model):
            result = evaluate_split(config, model, tokenizer, split_examples, c.max_length)
            if result is not None:
                loop.metrics.write(loop.position.step, kind, result)
            return result

        def end_of_epoch(state, epoch):
            whole = gathered_model(graphdef, state)  # gathered once for export and eval
            if primary:
                save_pretrained(whole, tokenizer, epoch_folder(workdir, epoch, stage))
            if epoch % c.eval_every_epochs and epoch != epochs:
                return
            result = evaluate("validation", validation, whole)
            accuracy = result["accuracy"] if result is not None else 0.0
            best = accuracy > loop.extra.get("best_accuracy", -1.0) or result is None
            if best:
                loop.extra.update(best_accuracy=accuracy, best_epoch=epoch)
            if primary:
                record_validation(stage_dir, epoch, result, best)

        state = loop.start(state)
        log(f"{stage}: {len(encoded)} training sequences, {len(validation)} validation, "
            f"{batches.steps_per_epoch} steps/epoch x {epochs} epochs")
        state, finished = loop.run(state, train_step, end_of_epoch)
        if not finished:
            return stage_dir
        evaluate("test", test, gathered_model(graphdef, state))
        step = loop.position.step
    if not primary:
        return stage_dir
    plot = plot_metrics(stage_dir / "metrics.jsonl", stage_dir / "metrics.png")
    log(f"{stage} done: {step} steps; models per epoch in {stage_dir}/epoch_*, plot {plot}")
    return stage_dir
