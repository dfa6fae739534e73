"""The reward model's training set: sampled reasoning per training question, judged, de-duplicated.

`rm.samples_per_question` samples per question (temperature `rm.temperature`, top_k `rm.top_k`)
from the model to be reranked, labelled by whether the extracted answer is correct; identical
texts of one question are kept once (the paper de-duplicates). The result is cached in
`<workdir>/rm/samples.jsonl`, one line per question appended and flushed as each batch of
questions ends, so a resumed stage, or one killed while sampling, never redraws what it has. The
key of a batch depends only on (seed, its first question's index), so a batch drawn again after a
kill gives the same samples. `samples.meta.json` records how the set was drawn: a cache drawn
otherwise is an error, never silently mixed in.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Sequence

import jax

from reft_jax.data.batching import encode_prompt
from reft_jax.data.jsonio import parse_object
from reft_jax.data.records import PROGRAM, Example
from reft_jax.errors import ReftError
from reft_jax.eval.predict import sample_texts
from reft_jax.eval.results import PredictionWriter, completed
from reft_jax.parallel import rows_per_batch_multiple
from reft_jax.parallel.hosts import any_process
from reft_jax.rewards import Judged, RewardConfig, SandboxPool, judge
from reft_jax.sampling import Sampler, SamplingSettings

SAMPLES, META = "samples.jsonl", "samples.meta.json"


@dataclasses.dataclass(frozen=True)
class DrawSettings:
    source: str  # the model the samples come from
    samples_per_question: int
    temperature: float
    top_k: int
    max_new_tokens: int
    max_length: int
    seed: int
    style: str
    chat: bool

    @classmethod
    def from_config(cls, config, source: pathlib.Path) -> "DrawSettings":
        r = config.rm
        return cls(str(source), r.samples_per_question, r.temperature, r.top_k, r.max_new_tokens,
                   r.max_length, config.seed, config.data.style, config.data.chat_template)


def unique_samples(texts: Sequence[str], judged: Sequence[Judged]) -> list[dict]:
    """{"text", "correct"} per distinct text, first occurrence kept, in sample order."""
    seen, kept = set(), []
    for text, j in zip(texts, judged):
        if text not in seen:
            seen.add(text)
            kept.append({"text": text, "correct": bool(j.correct)})
    return kept


def check_meta(folder: pathlib.Path, settings: DrawSettings) -> None:
    """An existing cache must have been drawn the way this run would draw it."""
    meta_path, wanted = folder / META, dataclasses.asdict(settings)
    if meta_path.exists():
        had = json.loads(meta_path.read_text())
        differ = sorted(key for key in wanted if had.get(key) != wanted[key])
        if differ:
            raise ReftError(f"{folder / SAMPLES} was drawn with other settings ({', '.join(differ)}: "
                            f"{[had.get(k) for k in differ]} there, {[wanted[k] for k in differ]} "
                            "now); delete it (and the rm checkpoints) or use another workdir")


def draw_samples(lm, tokenizer: Any, questions: Sequence[Example], settings: DrawSettings,
                 folder: pathlib.Path, batch: int, program_timeout: float, mesh=None,
                 primary: bool = True, log=print) -> dict[str, list[dict]]:
    """{question id: unique {"text", "correct"} samples}, drawn or read from the cache.

    Over several processes every process samples the same batches (a collective) and judges
    them the same way; process 0 alone writes the cache.
    """
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    check_meta(folder, settings)
    path = folder / SAMPLES
    done = completed(path)
    any_process(False)  # every process has read the cache before process 0 appends to it
    if primary:
        (folder / META).write_text(json.dumps(dataclasses.asdict(settings), indent=2) + "\n")
    writer = PredictionWriter(path) if primary else None
    source = settings.source
    found = {r["id"]: r["samples"] for r in _complete_records(path)} if done else {}
    undone = sum((source, q.id) not in done for q in questions)
    todo = [s for s in range(0, len(questions), batch)
            if any((source, q.id) not in done for q in questions[s:s + batch])]
    if todo:
        log(f"rm: sampling {settings.samples_per_question} per question for {undone} of "
            f"{len(questions)} questions")
    sampler = Sampler(tokenizer.eos_token_id, tokenizer.pad_token_id, max_length=settings.max_length,
                      mesh=mesh)
    multiple = rows_per_batch_multiple(mesh) if mesh is not None else 1
    n = settings.samples_per_question
    sampling = SamplingSettings(max_new_tokens=settings.max_new_tokens,
                                temperature=settings.temperature, top_k=settings.top_k, num_samples=n)
    pool = SandboxPool(timeout=program_timeout) if settings.style == PROGRAM and todo else None
    bar = tqdm(total=len(questions), initial=len(questions) - undone, desc="rm samples",
               unit="question", dynamic_ncols=True, disable=not primary or not todo)
    try:
        for start in todo:
            chunk = list(questions[start:start + batch])
            prompts = [encode_prompt(q, tokenizer, settings.style, settings.chat) for q in chunk]
            rng = jax.random.fold_in(jax.random.key(settings.seed), start)
            texts = sample_texts(sampler, lm, tokenizer, prompts, rng, sampling, multiple)
            judged = judge(texts, [q for q in chunk for _ in range(n)], settings.style,
                           RewardConfig(timeout=program_timeout), pool)
            for i, q in enumerate(chunk):
                if (source, q.id) in done:
                    continue
                found[q.id] = unique_samples(texts[i * n:(i + 1) * n], judged[i * n:(i + 1) * n])
                if writer is not None:
                    writer.write({"model": source, "id": q.id, "samples": found[q.id]})
                bar.update(1)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        if pool is not None:
            pool.close()
    missing = [q.id for q in questions if q.id not in found]
    if missing:
        raise ReftError(f"{path}: no samples for {len(missing)} questions (e.g. {missing[0]!r})")
    return found


def _complete_records(path: pathlib.Path) -> list[dict]:
    """Records of every terminated line: an unterminated last one (a kill mid-write) is drawn
    again, as `completed` counts it undone."""
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    return [parse_object(line, f"{path}:{n}") for n, line in enumerate(lines, 1) if line.strip()]
