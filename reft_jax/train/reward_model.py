"""`stages=rm`: the reranker's reward model, as the paper trains it.

A 2-class head on a trunk initialised from the model to be reranked (`rm.source`; by default the
SFT epoch chosen on validation), trained on that model's own de-duplicated samples of the
training questions (`rm_samples`), labelled by whether their answer is correct. The run's
validation questions (the split every stage carves from train) give the validation set, so the
reward model never sees a validation question in training and never reads test. Each epoch ends
with accuracy and AUC on it; the best epoch (by AUC, or by accuracy when the validation set holds
one class only) is exported to `<workdir>/rm/best`, which `stages=eval` reranks with.

Training is the shared machinery: `make_train_step` with the classifier loss, `RunLoop` for
resume / periodic saves / SIGTERM / the non-finite stop, the SFT batcher for length-bucketed,
seed-determined batches. The sampled set is cached, so resuming never resamples.
"""

from __future__ import annotations

import pathlib
import time

import jax
import numpy as np
from flax import nnx

from reft_jax.data.batching import Encoded, SFTBatches, encode_prompt
from reft_jax.errors import ReftError
from reft_jax.eval.classification import binary_accuracy, roc_auc
from reft_jax.eval.devices import config_mesh, place_model
from reft_jax.eval.rm_scores import classifier_ids, score_sequences
from reft_jax.models import load_pretrained
from reft_jax.models.reward_model import RewardModel, save_reward_model
from reft_jax.models.transformer import apply_remat
from reft_jax.parallel import make_mesh, rows_per_batch_multiple
from reft_jax.parallel.hosts import is_primary
from reft_jax.train.logging import plot_metrics
from reft_jax.train.loop import LoopSettings, RunLoop
from reft_jax.train.placement import Placement
from reft_jax.train.rm_samples import DrawSettings, draw_samples
from reft_jax.train.rm_step import make_rm_step
from reft_jax.train.sft import best_epoch_folder
from reft_jax.train.state import create_train_state, gathered_model, make_optimizer
from reft_jax.train.validation import train_and_validation


def rm_source(config) -> pathlib.Path:
    """`rm.source`, or the SFT epoch chosen on validation; a ReftError naming the key if missing."""
    given = str(config.rm.source)
    if given:
        path = pathlib.Path(given).expanduser()
        if not path.exists():
            raise ReftError(f"config.rm.source={given!r} does not exist; give the Hugging Face "
                            "folder (or .gguf) of the model to be reranked")
        return path
    path = best_epoch_folder(pathlib.Path(config.workdir))
    if path is None or not path.exists():
        raise ReftError(f"config.rm.source is empty and {config.workdir}/sft/best.json names no "
                        "SFT epoch: run stages=sft first, or set config.rm.source")
    return path


def check_settings(config) -> None:
    r = config.rm
    for key in ("samples_per_question", "epochs", "batch_size", "grad_accum", "max_new_tokens",
                "max_length"):
        if r[key] < 1:
            raise ReftError(f"config.rm.{key} must be >= 1, got {r[key]}")
    if r.batch_size % r.grad_accum:
        raise ReftError(f"config.rm.grad_accum={r.grad_accum} does not divide "
                        f"rm.batch_size={r.batch_size}")
    m = config.mesh
    split = rows_per_batch_multiple(make_mesh(m.data, m.fsdp, m.tensor))
    if (r.batch_size // r.grad_accum) % split:  # found before sampling, not after
        raise ReftError(f"config.rm.batch_size={r.batch_size} gives micro-batches of "
                        f"{r.batch_size // r.grad_accum} rows, which do not split over the mesh's "
                        f"{split} data x fsdp devices")


def labelled_sequences(questions, samples: dict, tokenizer, config) -> tuple[list, np.ndarray]:
    """(classifier id lists, labels) of every unique sample of `questions`, question by question."""
    d = config.data
    sequences, labels = [], []
    for q in questions:
        prompt = encode_prompt(q, tokenizer, d.style, d.chat_template)
        for s in samples[q.id]:
            sequences.append(classifier_ids(prompt, s["text"], tokenizer, config.rm.max_length))
            labels.append(bool(s["correct"]))
    return sequences, np.asarray(labels, bool)


def validation_metrics(rm, sequences, labels, pad_id: int, rows: int) -> dict[str, float]:
    probs = score_sequences(rm, sequences, pad_id, rows)
    result = {"accuracy": binary_accuracy(probs, labels), "samples": float(len(labels)),
              "correct_share": float(labels.mean())}
    auc = roc_auc(probs, labels)
    if auc is not None:
        result["auc"] = auc
    return result


def run_reward_model(config, log=print) -> pathlib.Path:
    """Sample (or read the cache), train, validate each epoch, export the best to rm/best."""
    r = config.rm
    primary = is_primary()
    log = log if primary else (lambda *_: None)
    check_settings(config)
    workdir = pathlib.Path(config.workdir)
    stage_dir = workdir / "rm"
    source = rm_source(config)
    train_questions, val_questions = train_and_validation(config)
    lm, tokenizer = load_pretrained(source, dtype=config.model.dtype,
                                    param_dtype=config.model.param_dtype)
    apply_remat(lm, config.model)
    mesh = config_mesh(config)
    lm = place_model(lm, mesh)  # sampling splits its rows over the run's devices
    samples = draw_samples(lm, tokenizer, train_questions + val_questions,
                           DrawSettings.from_config(config, source), stage_dir,
                           config.eval.batch_size, config.eval.program_timeout, mesh, primary, log)
    module = RewardModel(lm, rngs=nnx.Rngs(config.seed))
    del lm

    train_seqs, train_labels = labelled_sequences(train_questions, samples, tokenizer, config)
    val_seqs, val_labels = labelled_sequences(val_questions, samples, tokenizer, config)
    if len(train_seqs) < r.batch_size:
        raise ReftError(f"config.rm.batch_size={r.batch_size} is larger than the "
                        f"{len(train_seqs)} unique training samples")
    encoded = [Encoded(tuple(s), len(s)) for s in train_seqs]
    batches = SFTBatches(encoded, r.batch_size, r.grad_accum, config.seed, tokenizer.pad_token_id)
    optimizer, _ = make_optimizer(r.learning_rate, r.epochs * batches.steps_per_epoch,
                                  r.warmup_ratio, r.weight_decay, r.adam_eps, r.grad_clip)
    graphdef, state = create_train_state(module, optimizer)
    placement = Placement.for_run(config.mesh, module, state, r.batch_size // r.grad_accum,
                                  batch_key="rm.batch_size")
    state = placement.put_state(state)
    del module
    step_fn = make_rm_step(graphdef, optimizer, r.grad_accum, placement)
    settings = LoopSettings("rm", r.epochs, batches.steps_per_epoch, r.save_every_steps,
                            r.keep_checkpoints, r.stop_after_step)
    identity = {"seed": config.seed, "train_samples": len(train_seqs),
                "validation_samples": len(val_seqs), "source": str(source)}
    best = stage_dir / "best"

    def train_step(state, position):
        start = time.perf_counter()
        indices = batches.epoch_order(position.epoch)[position.index]
        batch = batches.make_batch(indices)
        del batch["loss_mask"]
        batch["labels"] = train_labels[indices].astype(np.int32).reshape(r.grad_accum, -1)
        state, metrics = step_fn(state, placement.put_batch(batch))
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        metrics["sequences_per_s"] = len(indices) / (time.perf_counter() - start)
        return state, metrics

    with RunLoop(stage_dir, settings, identity, log, primary,
                 postfix=("loss", "accuracy")) as loop:

        def end_of_epoch(state, epoch):
            whole = gathered_model(graphdef, state)
            result = (validation_metrics(whole, val_seqs, val_labels, tokenizer.pad_token_id,
                                         r.batch_size) if val_seqs else None)
            if result is not None:
                loop.metrics.write(loop.position.step, "validation", result)
            score = -1.0 if result is None else result.get("auc", result["accuracy"])
            if result is None or score > loop.extra.get("best_score", -1.0) or not best.exists():
                loop.extra.update(best_score=score, best_epoch=epoch)
                if primary:
                    save_reward_model(whole, tokenizer, best)

        state = loop.start(state)
        log(f"rm: {len(train_seqs)} unique training samples ({train_labels.mean():.1%} correct) "
            f"from {len(train_questions)} questions, {len(val_seqs)} validation samples from "
            f"{len(val_questions)}; {batches.steps_per_epoch} steps/epoch x {r.epochs} epochs, "
            f"trunk from {source}")
        state, finished = loop.run(state, train_step, end_of_epoch)
        steps = loop.position.step
    if finished and primary:
        plot = plot_metrics(stage_dir / "metrics.jsonl", stage_dir / "metrics.png",
                            train_keys=("loss", "accuracy"))
        log(f"rm done: {steps} steps; best epoch {loop.extra.get('best_epoch')} (validation) "
            f"exported to {best}; plot {plot}")
    return stage_dir
