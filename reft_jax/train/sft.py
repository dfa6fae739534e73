"""The SFT warm-up stage: train on (question, reasoning) pairs, evaluate, checkpoint, resume.

Running the same command again resumes from the latest checkpoint: the train state, the data
position (epoch and batch within it) and the seed all come back, so an interrupted run ends
with the same parameters as an uninterrupted one. SIGTERM saves a checkpoint and exits 0; a
non-finite loss stops the run with an error and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import pathlib
import signal
import time

import jax
import numpy as np

from reft_jax.data import load_examples
from reft_jax.data.batching import SFTBatches, encode_all, split_validation
from reft_jax.errors import ReftError
from reft_jax.eval.evaluate import greedy_accuracy
from reft_jax.models import load_pretrained, save_pretrained
from reft_jax.parallel.hosts import any_process, is_primary
from reft_jax.train.checkpointing import Checkpointer
from reft_jax.train.logging import MetricsLog, plot_metrics
from reft_jax.train.sft_step import make_sft_step
from reft_jax.train.placement import Placement
from reft_jax.train.state import create_train_state, gathered_model, make_optimizer


class StopRequest:
    """Turns SIGTERM into a flag the loop checks between steps."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self._previous)


def epoch_folder(workdir: pathlib.Path, epoch: int) -> pathlib.Path:
    """Where the model after `epoch` (1-based) is exported; name it as the ReFT warm-up start."""
    return workdir / "sft" / f"epoch_{epoch}"


def run_sft(config, log=print) -> pathlib.Path:
    """Train, evaluate each epoch on the validation split, test once at the end.

    Over several processes every process runs this same loop; process 0 alone logs and writes
    the metrics and the exported models, and each process evaluates its share of the examples.
    """
    c, d = config.sft, config.data
    primary = is_primary()
    log = log if primary else (lambda *_: None)
    workdir = pathlib.Path(config.workdir)
    data_dir = d.data_dir if d.data_dir else None
    model, tokenizer = load_pretrained(config.model.source, dtype=config.model.dtype,
                                       param_dtype=config.model.param_dtype)
    if config.model.remat:  # recompute layers in the backward pass: less memory, more time
        model.config = model.trunk.config = model.config.replace(remat=True)
    examples = load_examples(d.dataset, d.train_split, style=d.style, data_dir=data_dir)
    if d.max_train_examples > 0:
        examples = examples[:d.max_train_examples]
    train, validation = split_validation(examples, d.validation_fraction, config.seed)
    encoded = encode_all(train, tokenizer, d.style, c.max_length, d.chat_template, log)
    batches = SFTBatches(encoded, c.batch_size, c.grad_accum, config.seed, tokenizer.pad_token_id)
    total_steps = c.epochs * batches.steps_per_epoch
    optimizer, schedule = make_optimizer(c.learning_rate, total_steps, c.warmup_ratio,
                                         c.weight_decay, c.adam_eps, c.grad_clip)
    graphdef, state = create_train_state(model, optimizer)
    placement = Placement.for_run(config.mesh, model, state, c.batch_size // c.grad_accum)
    state = placement.put_state(state)
    del model
    step_fn = make_sft_step(graphdef, optimizer, c.grad_accum, placement)
    ckpt = Checkpointer(workdir / "sft" / "checkpoints", c.keep_checkpoints, c.save_every_steps)
    epoch, batch_in_epoch, step = 0, 0, 0
    if ckpt.latest_step() is not None:
        state, meta = ckpt.restore(state)
        if meta["seed"] != config.seed or meta["steps_per_epoch"] != batches.steps_per_epoch:
            raise ReftError(f"{ckpt.directory} holds a run with another seed or dataset; use a new "
                            "workdir or the same settings")
        epoch, batch_in_epoch, step = meta["epoch"], meta["batch_in_epoch"], meta["step"]
        log(f"resuming from step {step} (epoch {epoch + 1}, batch {batch_in_epoch})")
    log(f"sft: {len(encoded)} training examples, {len(validation)} validation, "
        f"{batches.steps_per_epoch} steps/epoch x {c.epochs} epochs")
    metrics_log = MetricsLog(workdir / "sft", total_steps, step, enabled=primary)

    def meta():
        return {"epoch": epoch, "batch_in_epoch": batch_in_epoch, "step": step,
                "seed": config.seed, "steps_per_epoch": batches.steps_per_epoch}

    def evaluate(kind: str, split_examples, model) -> None:
        limit = config.eval.max_examples
        chosen = split_examples[:limit] if limit > 0 else split_examples
        if chosen:
            result = greedy_accuracy(model, tokenizer, chosen, d.style,
                                     batch_size=config.eval.batch_size,
                                     max_new_tokens=config.eval.max_new_tokens,
                                     max_length=c.max_length, chat=d.chat_template,
                                     program_timeout=config.eval.program_timeout)
            metrics_log.write(step, kind, result)

    try:
        with StopRequest() as stop:
            while epoch < c.epochs:
                order = batches.epoch_order(epoch)
                while batch_in_epoch < len(order):
                    start = time.perf_counter()
                    batch = batches.make_batch(order[batch_in_epoch])
                    new_state, metrics = step_fn(state, placement.put_batch(batch))
                    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                    if not metrics["finite"]:
                        raise ReftError(
                            f"non-finite loss or gradient at step {step + 1}; stopped. The last good "
                            f"checkpoint (step {ckpt.latest_step()}) is in {ckpt.directory}")
                    state, step, batch_in_epoch = new_state, step + 1, batch_in_epoch + 1
                    metrics["tokens_per_s"] = float(np.sum(batch["attention_mask"])) / (
                        time.perf_counter() - start)
                    metrics_log.write(step, "train", metrics)
                    if ckpt.due(step):
                        ckpt.save(step, state, meta())
                    stop_here = c.stop_after_step > 0 and step >= c.stop_after_step
                    terminated = any_process(stop.requested)  # a SIGTERM to any process stops all
                    if terminated or stop_here:
                        ckpt.save(step, state, meta())
                        why = "SIGTERM" if terminated else f"sft.stop_after_step={c.stop_after_step}"
                        log(f"stopped at step {step} ({why}); checkpoint saved, run again to resume")
                        return workdir / "sft"
                epoch, batch_in_epoch = epoch + 1, 0
                ckpt.save(step, state, meta())
                whole = gathered_model(graphdef, state)  # gathered once for export and eval
                if primary:
                    save_pretrained(whole, tokenizer, epoch_folder(workdir, epoch))
                evaluate("validation", validation, whole)
        test = load_examples(d.dataset, d.test_split, style=d.style, data_dir=data_dir)
        evaluate("test", test, gathered_model(graphdef, state))
    finally:
        metrics_log.close()
        ckpt.close()
    if not primary:
        return workdir / "sft"
    plot = plot_metrics(workdir / "sft" / "metrics.jsonl", workdir / "sft" / "metrics.png")
    log(f"sft done: {step} steps; models per epoch in {workdir / 'sft'}/epoch_*, plot {plot}")
    return workdir / "sft"
