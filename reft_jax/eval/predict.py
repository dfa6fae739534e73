"""One model on a batch of questions: greedy answer, k samples, votes, reward-model scores.

Per question this yields the predictions.jsonl record `reft_jax.eval.results` documents. All
samples of a batch come from one sampler call with `num_samples=k` (one prefill per prompt); the
host then decodes, judges (answers, sandbox), scores with the reward model and picks the vote and
the rerank. The random key of a batch depends only on (seed, the batch's first question index),
so a resumed eval redraws exactly the samples an uninterrupted one draws.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from reft_jax.data.batching import encode_prompt
from reft_jax.data.records import Example
from reft_jax.eval.evaluate import decode_completions
from reft_jax.eval.rerank import rerank_pick
from reft_jax.eval.rm_scores import classifier_ids, score_sequences
from reft_jax.eval.voting import vote_index
from reft_jax.models.reward_model import RewardModel
from reft_jax.parallel import rows_per_batch_multiple
from reft_jax.rewards import Judged, RewardConfig, SandboxPool, judge
from reft_jax.sampling import Sampler, SamplingSettings

RecordHook = Callable[[Example, str], dict]  # (question, greedy text) -> extra columns


@dataclasses.dataclass(frozen=True)
class PredictSettings:
    k: int  # samples per question
    max_new_tokens: int
    temperature: float
    top_k: int
    style: str
    chat: bool
    program_timeout: float
    rm_max_length: int  # reward-model sequences keep their last this many tokens
    rm_rows: int  # sequences per reward-model forward

    @classmethod
    def from_config(cls, config) -> "PredictSettings":
        e = config.eval
        return cls(k=e.vote_samples, max_new_tokens=e.max_new_tokens,
                   temperature=e.vote_temperature, top_k=e.vote_top_k, style=config.data.style,
                   chat=config.data.chat_template, program_timeout=e.program_timeout,
                   rm_max_length=config.rm.max_length, rm_rows=e.batch_size)


def sample_texts(sampler: Sampler, model, tokenizer: Any, prompts: list[list[int]], rng: jax.Array,
                 settings: SamplingSettings, row_multiple: int = 1) -> list[str]:
    """`settings.num_samples` response texts per prompt, prompt-major. The prompts are padded
    with copies of the last one to a multiple of `row_multiple` (the devices the rows split
    over); the copies' samples are dropped."""
    padded = prompts + [prompts[-1]] * (-len(prompts) % row_multiple)
    out = sampler(model, padded, rng, settings)
    rows = len(prompts) * settings.num_samples
    return decode_completions(tokenizer, out.tokens[:rows], out.mask[:rows])


def graded(j: Judged | None) -> dict:
    """{"answer", "correct"} of a picked sample; no pick is no answer, and wrong."""
    return {"answer": None, "correct": False} if j is None else {"answer": j.answer,
                                                                  "correct": bool(j.correct)}


def make_record(model: str, example: Example, greedy: Judged, samples: Sequence[Judged],
                rm_scores: Sequence[float] | None, extra: dict | None = None) -> dict:
    """The predictions.jsonl line of one (model, question).

    The voted answer is the winning cluster's first sample (`vote_index`), graded as that
    sample was; the reranked one is `rerank_pick`'s sample. `reranked` is None without a reward
    model; with one but no sample holding an answer it is {"answer": None, "correct": False}.
    """
    answers = [s.answer for s in samples]
    voted = vote_index(answers)
    record = {
        "model": model, "id": example.id, "gold": example.answer,
        "greedy": graded(greedy),
        "samples": [{"answer": s.answer, "correct": bool(s.correct),
                     "rm_score": None if rm_scores is None else float(rm_scores[i])}
                    for i, s in enumerate(samples)],
        "voted": graded(None if voted is None else samples[voted]),
        "reranked": None,
    }
    if rm_scores is not None:
        picked = rerank_pick(answers, list(rm_scores))
        record["reranked"] = graded(None if picked is None else samples[picked])
    if extra is not None:
        record["extra"] = extra
    return record


class Predictor:
    """Greedy + k samples of one model, judged and scored; `__call__` gives one batch's records.

    With a mesh of several devices the sample rows split over its data x fsdp devices (see
    `sample_texts` for batches that do not split evenly).
    """

    def __init__(self, name: str, model, tokenizer: Any, settings: PredictSettings,
                 reward_model: RewardModel | None = None, pool: SandboxPool | None = None,
                 mesh: Mesh | None = None, record_hook: RecordHook | None = None):
        self.name, self.model, self.tokenizer, self.settings = name, model, tokenizer, settings
        self.reward_model, self.pool, self.record_hook = reward_model, pool, record_hook
        self.sampler = Sampler(tokenizer.eos_token_id, tokenizer.pad_token_id, mesh=mesh)
        self.multiple = rows_per_batch_multiple(mesh) if mesh is not None else 1
        self.greedy = SamplingSettings(max_new_tokens=settings.max_new_tokens, temperature=0.0)
        self.sampling = SamplingSettings(max_new_tokens=settings.max_new_tokens,
                                         temperature=settings.temperature, top_k=settings.top_k,
                                         num_samples=settings.k)
        self.reward = RewardConfig(timeout=settings.program_timeout)

    def _texts(self, prompts: list[list[int]], rng, sampling: SamplingSettings) -> list[str]:
        return sample_texts(self.sampler, self.model, self.tokenizer, prompts, rng, sampling,
                            self.multiple)

    def _judge(self, texts: list[str], examples: list[Example]) -> list[Judged]:
        return judge(texts, examples, self.settings.style, self.reward, self.pool)

    def _rm_scores(self, prompts: list[list[int]], texts: list[str]) -> np.ndarray:
        k, s = self.settings.k, self.settings
        sequences = [classifier_ids(prompts[i // k], text, self.tokenizer, s.rm_max_length)
                     for i, text in enumerate(texts)]
        return score_sequences(self.reward_model, sequences, self.tokenizer.pad_token_id, s.rm_rows)

    def __call__(self, examples: Sequence[Example], rng: jax.Array, primary: bool = True
                 ) -> list[dict]:
        """Records of `examples` in order. Every process samples (a collective over the mesh);
        only the primary one (primary=True) judges and scores, the others return []."""
        examples, k = list(examples), self.settings.k
        prompts = [encode_prompt(ex, self.tokenizer, self.settings.style, self.settings.chat)
                   for ex in examples]
        greedy_rng, sample_rng = jax.random.split(rng)
        greedy_texts = self._texts(prompts, greedy_rng, self.greedy)
        sample_texts = self._texts(prompts, sample_rng, self.sampling)
        if not primary:
            return []
        greedy = self._judge(greedy_texts, examples)
        samples = self._judge(sample_texts, [ex for ex in examples for _ in range(k)])
        scores = (self._rm_scores(prompts, sample_texts) if self.reward_model is not None
                  else None)
        hook = self.record_hook
        return [make_record(self.name, ex, greedy[q], samples[q * k:(q + 1) * k],
                            None if scores is None else scores[q * k:(q + 1) * k],
                            None if hook is None else hook(ex, greedy_texts[q]))
                for q, ex in enumerate(examples)]
