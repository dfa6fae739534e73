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
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reft_jax.data import load_examples
from reft_jax.data.batching import SFTBatches, encode_all, split_validation
from reft_jax.errors import ReftError
from reft_jax.eval.evaluate import greedy_accuracy
from reft_jax.models import load_pretrained, save_pretrained
from reft_jax.parallel import batch_sharding, make_mesh, put_global, rows_per_batch_multiple
from reft_jax.parallel.hosts import any_process, is_primary, sum_over_processes, to_host
from reft_jax.train.checkpointing import Checkpointer
from reft_jax.train.logging import MetricsLog, plot_metrics
from reft_jax.train.sft_step import make_sft_step
from reft_jax.train.state import (create_train_state, make_optimizer, merge_model,
                                  train_state_shardings)


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


def whole_model(graphdef, state):
    """The model with every parameter whole on this process: the state's own arrays in a
    single-process run, copies gathered from all processes otherwise (call it on all)."""
    if jax.process_count() == 1:
        return merge_model(graphdef, state)
    return nnx.merge(graphdef, jax.tree.map(jnp.asarray, to_host(state.params)))


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
    mesh = make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
    rows = c.batch_size // c.grad_accum
    if rows % rows_per_batch_multiple(mesh):
        raise ReftError(f"config.sft.batch_size={c.batch_size} gives micro-batches of {rows} rows, "
                        f"which do not split over the mesh's {rows_per_batch_multiple(mesh)} "
                        "data x fsdp devices")
    graphdef, state = create_train_state(model, optimizer)
    state_sharding = train_state_shardings(model, state, mesh)
    state = jax.device_put(state, state_sharding)
    del model
    rows_sharding = batch_sharding(mesh, batch_axis=1)
    step_fn = make_sft_step(graphdef, optimizer, c.grad_accum, state_sharding, rows_sharding)
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

    def evaluate(kind: str, split_examples) -> None:
        limit = config.eval.max_examples
        chosen = split_examples[:limit] if limit > 0 else split_examples
        if not chosen:
            return
        mine = chosen[jax.process_index()::jax.process_count()]
        result = greedy_accuracy(whole_model(graphdef, state), tokenizer, mine, d.style,
                                 batch_size=config.eval.batch_size,
                                 max_new_tokens=config.eval.max_new_tokens,
                                 max_length=c.max_length, chat=d.chat_template,
                                 program_timeout=config.eval.program_timeout)
        n = result["examples"]
        correct, reward, n = sum_over_processes(
            np.array([round(result["accuracy"] * n), result["mean_reward"] * n, n]))
        metrics_log.write(step, kind, {"accuracy": correct / max(n, 1),
                                       "mean_reward": reward / max(n, 1), "examples": n})

    try:
        with StopRequest() as stop:
            while epoch < c.epochs:
                order = batches.epoch_order(epoch)
                while batch_in_epoch < len(order):
                    start = time.perf_counter()
                    batch = batches.make_batch(order[batch_in_epoch])
                    placed = {k: put_global(v, rows_sharding) for k, v in batch.items()}
                    new_state, metrics = step_fn(state, placed)
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
                    if any_process(stop.requested) or stop_here:
                        ckpt.save(step, state, meta())
                        why = "SIGTERM" if stop.requested else f"sft.stop_after_step={c.stop_after_step}"
                        log(f"stopped at step {step} ({why}); checkpoint saved, run again to resume")
                        return workdir / "sft"
                epoch, batch_in_epoch = epoch + 1, 0
                ckpt.save(step, state, meta())
                exported = whole_model(graphdef, state)
                if primary:
                    save_pretrained(exported, tokenizer, epoch_folder(workdir, epoch))
                evaluate("validation", validation)
        test = load_examples(d.dataset, d.test_split, style=d.style, data_dir=data_dir)
        evaluate("test", test)
    finally:
        metrics_log.close()
        ckpt.close()
    if not primary:
        return workdir / "sft"
    plot = plot_metrics(workdir / "sft" / "metrics.jsonl", workdir / "sft" / "metrics.png")
    log(f"sft done: {step} steps; models per epoch in {workdir / 'sft'}/epoch_*, plot {plot}")
    return workdir / "sft"
