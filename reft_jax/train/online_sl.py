"""The paper's online self-training baseline (`stages=online_sl`).

The ReFT loop with a supervised loss: each iteration samples from the current policy as ReFT
does, then takes one step of ½ cross entropy on its own samples whose reward is exactly 1 plus
½ cross entropy on the questions' gold chains of thought. No value head, no reference model.
Both halves are token means; the step's (sum, count) form makes that exact through weights of
½ / (tokens of the half) on each target token, so with no correct sample the loss is the gold
cross entropy alone.
"""

from __future__ import annotations

import pathlib

import jax
import numpy as np

from reft_jax.data.batching import encode_sft
from reft_jax.rl.rollout import Rollout
from reft_jax.sampling import bucket_length
from reft_jax.train.loop import Position
from reft_jax.train.rl_stage import RLRun, run_rl_stage
from reft_jax.train.sft_step import make_sft_step
from reft_jax.train.state import TrainState

RESPONSE_BUCKET = 32


def self_training_batch(rollout: Rollout, gold: list[tuple[list[int], list[int]]],
                        pad_id: int, max_length: int) -> dict[str, np.ndarray]:
    """Rows: every rollout sample (weight 0 unless its reward is exactly 1), then each
    question's (prompt, gold target); one layout: left-padded prompt, then the response."""
    own = rollout.scores == 1.0
    width_p = rollout.input_ids.shape[1] - rollout.width
    targets = [t[:max(1, max_length - len(p))] for p, t in gold]
    width_p = max(width_p, bucket_length(max(len(p) for p, _ in gold)))
    longest = max(rollout.width, max(len(t) for t in targets))
    width = width_p + -(-longest // RESPONSE_BUCKET) * RESPONSE_BUCKET
    rows = len(own) + len(gold)
    ids = np.full((rows, width), pad_id, np.int32)
    attention = np.zeros((rows, width), np.int32)
    weights = np.zeros((rows, width), np.float32)
    shift = width_p - (rollout.input_ids.shape[1] - rollout.width)
    n_own = rollout.input_ids.shape[1]
    ids[:len(own), shift:shift + n_own] = rollout.input_ids
    attention[:len(own), shift:shift + n_own] = rollout.attention_mask
    own_tokens = rollout.mask * own[:, None]
    gold_tokens = sum(len(t) for t in targets)
    if own_tokens.sum() > 0:
        weights[:len(own), width_p:width_p + rollout.width] = 0.5 * own_tokens / own_tokens.sum()
    for row, ((prompt, _), target) in enumerate(zip(gold, targets), start=len(own)):
        ids[row, width_p - len(prompt):width_p] = prompt
        ids[row, width_p:width_p + len(target)] = target
        attention[row, width_p - len(prompt):width_p + len(target)] = 1
        weights[row, width_p:width_p + len(target)] = 0.5 / gold_tokens
    return {"input_ids": ids, "attention_mask": attention, "loss_mask": weights}


class OnlineSelfTraining:
    stage = "online_sl"
    rows_key = "reft.rollout_batch"
    postfix = ("score", "accuracy", "loss")
    plot_keys = ("score", "accuracy", "loss", "response_length")

    def __init__(self, config):
        self.config = config

    def policy(self, lm):
        return lm

    def micro_rows(self, config) -> int:
        r = config.reft
        return r.rollout_batch * (r.samples_per_question + 1) // r.grad_accum

    def prepare(self, run: RLRun) -> None:
        self.run = run
        self.step = make_sft_step(run.graphdef, run.optimizer, self.config.reft.grad_accum,
                                  run.placement)

    def resume(self, extra: dict) -> None:
        pass

    def extra(self) -> dict:
        return {}

    def learn(self, state: TrainState, rollout: Rollout, position: Position):
        r, d = self.config.reft, self.config.data
        n = r.samples_per_question
        questions = rollout.examples[::n]
        gold = []
        for ex in questions:
            encoded = encode_sft(ex, self.run.tokenizer, d.style, d.chat_template)
            gold.append((list(encoded.ids[:encoded.target_start])[-r.max_prompt_length:],
                         list(encoded.ids[encoded.target_start:])))
        batch = self_training_batch(rollout, gold, self.run.tokenizer.pad_token_id, r.max_length)
        batch = {k: v.reshape(r.grad_accum, -1, *v.shape[1:]) for k, v in batch.items()}
        state, metrics = self.step(state, self.run.placement.put_batch(batch))
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        metrics["self_training_rows"] = float((rollout.scores == 1.0).sum())
        return state, metrics


def run_online_sl(config, log=print, **kwargs) -> pathlib.Path:
    """`stages=online_sl`: outputs under `<workdir>/online_sl/` as ReFT's under reft/."""
    return run_rl_stage(config, OnlineSelfTraining(config), log, **kwargs)
