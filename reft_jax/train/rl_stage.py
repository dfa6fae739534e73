"""What every on-policy stage shares: ReFT's PPO and the online self-training baseline.

Both start from the warm-up SFT checkpoint, walk the training questions in rollout batches,
sample and judge responses, and hand each rollout to a `Learner` that updates the train state.
Around that sit the shared run loop (resume, save, SIGTERM, the non-finite stop, metrics), the
validation after every epoch with the best epoch exported (never chosen on test), and one test
evaluation of that best model at the end.

The data order of epoch e depends only on (seed, e) and the sampling key of iteration s only on
(seed, s), so a resumed run draws exactly the samples the uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Any, Protocol

import jax
import numpy as np
import optax
from flax import nnx

from reft_jax.data.price_chains import check_chain
from reft_jax.data.records import PROGRAM
from reft_jax.errors import ReftError
from reft_jax.eval.training_curves import WARMUP_RECORD, warmup_record
from reft_jax.models import load_pretrained, save_pretrained
from reft_jax.models.checkpoints import load_tokenizer
from reft_jax.models.transformer import apply_remat
from reft_jax.parallel.hosts import is_primary
from reft_jax.rewards import RewardConfig, SandboxPool, judge
from reft_jax.rl.rollout import Judge, Rollout, collect
from reft_jax.train.logging import plot_metrics
from reft_jax.train.loop import LoopSettings, Position, RunLoop
from reft_jax.train.placement import Placement
from reft_jax.train.rollout_sampling import rollout_sampler, sampling_weights
from reft_jax.train.sft import best_epoch_folder, validation_ledger
from reft_jax.train.state import TrainState, create_train_state, gathered_model, make_optimizer
from reft_jax.train.validation import evaluate_split, test_examples, train_and_validation


def warmup_source(config) -> pathlib.Path:
    """`reft.warmup_checkpoint`, or epoch `reft.warmup_epoch` of this workdir's SFT run."""
    r = config.reft
    if r.warmup_checkpoint:
        path = pathlib.Path(r.warmup_checkpoint)
    elif r.warmup_min_accuracy > 0:
        path = first_good_epoch(pathlib.Path(config.workdir), r.warmup_min_accuracy, r.epochs)
    else:
        path = pathlib.Path(config.workdir) / "sft" / f"epoch_{r.warmup_epoch}"
    if not path.exists():
        raise ReftError(f"the ReFT warm-up checkpoint {path} does not exist: run the sft stage "
                        f"through epoch {r.warmup_epoch} first (config.reft.warmup_epoch), or set "
                        "config.reft.warmup_checkpoint to a Hugging Face folder")
    return path


def first_good_epoch(workdir: pathlib.Path, threshold: float, rl_epochs: int) -> pathlib.Path:
    """The first evaluated SFT epoch whose validation accuracy reached `threshold` (RL started
    right after SFT's jump learns; started before it, it stays near its start), else the best
    epoch on validation. Only epochs that leave `rl_epochs` of the SFT run after them count, so
    the SFT baseline always trained at least as long as warm-up + RL (when the run is that long)."""
    ledger = validation_ledger(workdir)
    if not ledger:
        raise ReftError(f"config.reft.warmup_min_accuracy needs the SFT run's validation record "
                        f"{workdir / 'sft' / 'validation.json'}: run the sft stage first")
    latest = max(ledger) - rl_epochs
    scored = sorted((e, acc) for e, acc in ledger.items()
                    if acc is not None and (e <= latest or latest < min(ledger)))
    reached = [e for e, acc in scored if acc >= threshold]
    if reached:
        return workdir / "sft" / f"epoch_{reached[0]}"
    if not scored:
        return best_epoch_folder(workdir)
    best = max(scored, key=lambda item: (item[1], -item[0]))[0]  # the earliest of equal ones
    print(f"warning: no SFT epoch up to {max(e for e, _ in scored)} reached validation accuracy "
          f"{threshold}; starting from the best one, epoch {best}")
    return workdir / "sft" / f"epoch_{best}"


def check_same_tokenizer(warmup: pathlib.Path, tokenizer: Any, base_source: str) -> None:
    """A warm-up trained with another tokenizer than the run's model is a configuration error."""
    if not pathlib.Path(base_source).exists():
        return  # a hub id: never downloaded just for this check
    base = load_tokenizer(base_source)
    if base.get_vocab() != tokenizer.get_vocab() or base.eos_token_id != tokenizer.eos_token_id:
        raise ReftError(f"the warm-up checkpoint {warmup} has another tokenizer than "
                        f"config.model.source={base_source!r}; start RL from a checkpoint of "
                        "this model")


class Learner(Protocol):
    """One on-policy algorithm: what it trains and what it does with a rollout."""

    stage: str  # the folder under the workdir
    rows_key: str  # the config key that sets the update's rows, for error messages
    postfix: tuple[str, ...]  # training values beside the progress bar
    plot_keys: tuple[str, ...]  # training values drawn in metrics.png

    def policy(self, lm) -> nnx.Module:
        """The module the train state holds (the LM, perhaps with a value head)."""

    def micro_rows(self, config) -> int:
        """Rows of one micro-batch of the update (they must split over the mesh)."""

    def prepare(self, run: "RLRun") -> None:
        """Build jitted passes once the state's placement is known."""

    def resume(self, extra: dict) -> None:
        """Take back the learner's own resumable values (say, an adaptive KL coefficient)."""

    def extra(self) -> dict:
        """The learner's own resumable values, saved with every checkpoint."""

    def learn(self, state: TrainState, rollout: Rollout, position: Position) -> tuple[TrainState, dict]:
        """Update the state from one judged rollout; metrics include `finite`."""


def language_model(module):
    """The causal LM inside a policy module (itself when it has no value head)."""
    return module.lm if hasattr(module, "lm") else module


@dataclasses.dataclass
class RLRun:
    """Everything a learner may need from the run."""

    config: Any
    tokenizer: Any
    warmup: pathlib.Path
    graphdef: nnx.GraphDef
    optimizer: optax.GradientTransformation
    placement: Placement
    loop: RunLoop | None = None


def answer_judge(config, pool: SandboxPool | None) -> Judge:
    """The paper's reward: the final answer against the gold one (1 / partial / 0)."""
    reward_config = RewardConfig.from_config(config)
    return lambda texts, rows: judge(texts, rows, config.data.style, reward_config, pool)


def process_judge(config, pool: SandboxPool | None) -> Judge:
    """An option for the synthetic price task (`reft.reward="process"`): reward 1 only when the
    answer is right AND the chain is valid step by step (`price_chains.check_chain`); a right
    answer after wrong steps earns the partial reward, as a wrong answer does."""
    if config.data.dataset != "price":
        raise ReftError("config.reft.reward='process' checks price-task chains; it needs "
                        f"config.data.dataset='price', not {config.data.dataset!r}")
    answers = answer_judge(config, pool)
    partial = config.reft.partial_reward

    def judge_fn(texts, rows):
        out = []
        for j, text, ex in zip(answers(texts, rows), texts, rows):
            valid = j.correct and check_chain(ex.question, text, config.data.style).valid
            out.append(j._replace(reward=1.0 if valid else (partial if j.extractable else 0.0)))
        return out

    return judge_fn


JUDGES = {"answer": answer_judge, "process": process_judge}


def run_rl_stage(config, learner: Learner, log=print, make_judge=None) -> pathlib.Path:
    """Run an on-policy stage; `make_judge(config, pool)` builds the reward (default: the one
    `config.reft.reward` names; tests pass their own)."""
    if make_judge is None:
        if config.reft.reward not in JUDGES:
            raise ReftError(f"config.reft.reward={config.reft.reward!r} is not one of {tuple(JUDGES)}")
        make_judge = JUDGES[config.reft.reward]
    r, d = config.reft, config.data
    primary = is_primary()
    log = log if primary else (lambda *_: None)
    workdir = pathlib.Path(config.workdir)
    stage_dir = workdir / learner.stage
    warmup = warmup_source(config)
    lm, tokenizer = load_pretrained(warmup, dtype=config.model.dtype,
                                    param_dtype=config.model.param_dtype)
    check_same_tokenizer(warmup, tokenizer, config.model.source)
    apply_remat(lm, config.model)
    train, validation = train_and_validation(config)
    test = test_examples(config)  # read now: a dataset without a test split fails before work
    steps_per_epoch = len(train) // r.rollout_batch
    if steps_per_epoch == 0:
        raise ReftError(f"config.reft.rollout_batch={r.rollout_batch} is larger than the "
                        f"{len(train)} training questions")
    optimizer, _ = make_optimizer(r.learning_rate, r.epochs * steps_per_epoch, 0.0,
                                  r.weight_decay, r.adam_eps, r.grad_clip, schedule="constant")
    module = learner.policy(lm)
    graphdef, state = create_train_state(module, optimizer)
    placement = Placement.for_run(config.mesh, module, state, learner.micro_rows(config),
                                  batch_key=learner.rows_key)
    state = placement.put_state(state)
    del module, lm
    run = RLRun(config, tokenizer, warmup, graphdef, optimizer, placement)
    learner.prepare(run)
    sampler, sampling = rollout_sampler(config, tokenizer.eos_token_id, tokenizer.pad_token_id,
                                        placement.mesh)
    pool = SandboxPool(timeout=config.eval.program_timeout) if d.style == PROGRAM else None
    judge_fn = make_judge(config, pool)
    settings = LoopSettings(learner.stage, r.epochs, steps_per_epoch, r.save_every_steps,
                            r.keep_checkpoints, r.stop_after_step)
    identity = {"seed": config.seed, "steps_per_epoch": steps_per_epoch, "warmup": str(warmup)}

    def iteration(state, position):
        start = time.perf_counter()
        order = np.random.default_rng([config.seed, position.epoch]).permutation(len(train))
        chosen = order[position.index * r.rollout_batch:(position.index + 1) * r.rollout_batch]
        questions = [train[i] for i in chosen]
        rng = jax.random.fold_in(jax.random.key(config.seed), position.step)
        policy_lm = language_model(nnx.merge(graphdef, sampling_weights(state.params,
                                                                         r.sampler_dtype)))
        rollout = collect(sampler, policy_lm, tokenizer, questions, d.style, sampling, rng,
                          judge_fn, d.chat_template, r.max_prompt_length)
        learn_start = time.perf_counter()
        state, metrics = learner.learn(state, rollout, position)
        run.loop.extra.update(learner.extra())
        lengths = rollout.mask.sum(-1)
        metrics.update(
            score=float(rollout.scores.mean()), accuracy=float(rollout.correct.mean()),
            extractable=float(rollout.extractable.mean()), response_length=float(lengths.mean()),
            truncated=float(rollout.truncated.mean()),
            time_sample=rollout.seconds["sample"], time_score=rollout.seconds["score"],
            time_learn=time.perf_counter() - learn_start)
        metrics["tokens_per_s"] = float(lengths.sum()) / (time.perf_counter() - start)
        return state, metrics

    try:
        with RunLoop(stage_dir, settings, identity, log, primary, learner.postfix) as loop:
            run.loop = loop
            best = stage_dir / "best"

            def end_of_epoch(state, epoch):
                whole = language_model(gathered_model(graphdef, state))
                result = evaluate_split(config, whole, tokenizer, validation, r.max_length)
                if result is not None:
                    loop.metrics.write(loop.position.step, "validation", result)
                previous = loop.extra.get("best_accuracy", -1.0)
                score = result["accuracy"] if result is not None else 0.0
                if score > previous or not best.exists():  # no validation: the latest epoch
                    loop.extra.update(best_accuracy=score, best_epoch=epoch)
                    if primary:
                        save_pretrained(whole, tokenizer, best)

            state = loop.start(state)
            learner.resume(loop.extra)
            if primary:  # where this stage branches off SFT, for eval's plot over training
                (stage_dir / WARMUP_RECORD).write_text(
                    json.dumps(warmup_record(warmup, workdir)) + "\n")
            log(f"{learner.stage}: {len(train)} training questions, {len(validation)} validation, "
                f"{steps_per_epoch} iterations/epoch x {r.epochs} epochs, from {warmup}")
            state, finished = loop.run(state, iteration, end_of_epoch)
            if not finished:
                return stage_dir
            last = language_model(gathered_model(graphdef, state))
            if primary:
                save_pretrained(last, tokenizer, stage_dir / "last")
            chosen, _ = load_pretrained(best, dtype=config.model.dtype,
                                        param_dtype=config.model.param_dtype)
            result = evaluate_split(config, chosen, tokenizer, test, r.max_length)
            if result is not None:
                loop.metrics.write(loop.position.step, "test", dict(
                    result, best_epoch=loop.extra.get("best_epoch", 0)))
            steps = loop.position.step
    finally:
        if pool is not None:
            pool.close()
    if primary:
        plot = plot_metrics(stage_dir / "metrics.jsonl", stage_dir / "metrics.png",
                            train_keys=learner.plot_keys)
        log(f"{learner.stage} done: {steps} iterations; best epoch {loop.extra.get('best_epoch')} "
            f"(validation) exported to {best}; plot {plot}")
    return stage_dir

