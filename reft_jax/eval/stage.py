"""`stages=eval`: Top-1, Voting@k, Rerank@k and pass@k of each model, as the paper reports them.

For every model in `config.eval.models`, on `config.eval.split`, in batches of `eval.batch_size`
questions (each with `eval.vote_samples` samples): the records of `reft_jax.eval.predict` are
appended to `<workdir>/eval/predictions.jsonl` and flushed as each batch ends. Running again
skips every (model, question) already there, so a killed eval continues where it stopped and
ends with the same results as an uninterrupted one. At the end `results.json`
(`{"split", "k", "rows"}`), the printed table and `accuracy_vs_k.png` are rebuilt from that file
alone, so every number follows from it.

Everything that can be wrong is checked before a model is loaded: k, the model names, the split,
the reward model and its tokenizer, and a predictions file left by an eval with other settings.
"""

from __future__ import annotations

import json
import pathlib
from typing import Sequence

import jax

from reft_jax.data.jsonio import parse_object
from reft_jax.data.records import PROGRAM, Example
from reft_jax.errors import ReftError
from reft_jax.eval.chains import price_chain_hook
from reft_jax.eval.devices import config_mesh, place_model
from reft_jax.eval.model_sources import (check_reward_model_tokenizer, model_names,
                                         resolve_model, resolve_reward_model)
from reft_jax.eval.predict import PredictSettings, Predictor, RecordHook
from reft_jax.eval.results import (PredictionWriter, accuracy_vs_k, completed, format_table,
                                   plot_accuracy_vs_k, powers_of_two, read_predictions, summarize)
from reft_jax.eval.splits import eval_examples
from reft_jax.eval.training_curves import plot_training_curves, training_curves
from reft_jax.models import load_pretrained
from reft_jax.models.checkpoints import load_tokenizer
from reft_jax.models.reward_model import load_reward_model
from reft_jax.parallel.hosts import any_process, is_primary
from reft_jax.rewards import SandboxPool

PREDICTIONS, RESULTS, PLOT = "predictions.jsonl", "results.json", "accuracy_vs_k.png"
CURVES = "accuracy_over_training.png"


def run_eval(config, log=print) -> pathlib.Path:
    """The eval stage; returns `<workdir>/eval`. On the price task every record also carries
    the greedy chain's check (valid-chain accuracy)."""
    hook = price_chain_hook(config.data.style) if config.data.dataset == "price" else None
    return evaluate_models(config, log, hook)


def check_settings(config) -> int:
    """k (samples per question) after checking the eval's numbers."""
    e = config.eval
    if e.vote_samples < 1:
        raise ReftError(f"config.eval.vote_samples must be >= 1 (k of Voting@k, Rerank@k and "
                        f"pass@k), got {e.vote_samples}")
    for key in ("batch_size", "max_new_tokens"):
        if e[key] < 1:
            raise ReftError(f"config.eval.{key} must be >= 1, got {e[key]}")
    return int(e.vote_samples)


def check_previous(path: pathlib.Path, wanted: set[tuple[str, str]], k: int,
                   reranking: bool) -> None:
    """A predictions file from an eval with another k, or with(out) a reward model, cannot be
    resumed: its records would mix into this eval's table."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]  # an unterminated tail is redone
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = parse_object(line, f"{path}:{lineno}")
        if (record.get("model"), record.get("id")) not in wanted:
            continue
        samples = record.get("samples", [])
        if len(samples) != k:
            raise ReftError(
                f"{path}:{lineno} holds {len(samples)} samples for model {record['model']!r}, "
                f"but config.eval.vote_samples={k}; a resumed eval needs the same k (move that "
                "file away, or use another workdir, to start over)")
        scored = any(s.get("rm_score") is not None for s in samples)
        if scored != reranking:
            raise ReftError(
                f"{path}:{lineno} was written {'with' if scored else 'without'} a reward model "
                f"and this eval runs {'with' if reranking else 'without'} one; move that file "
                "away (or set config.eval.reward_model to match) to start over")


def write_results(out_dir: pathlib.Path, split: str, k: int, names: Sequence[str],
                  examples: Sequence[Example], log) -> list[dict]:
    """results.json, the table and the plot, from this eval's records in predictions.jsonl
    (records of other models or questions, left by an earlier eval, are not counted)."""
    order = {(name, ex.id): (i, j) for i, name in enumerate(names) for j, ex in enumerate(examples)}
    records = [r for r in read_predictions(out_dir / PREDICTIONS) if (r["model"], r["id"]) in order]
    records.sort(key=lambda r: order[(r["model"], r["id"])])
    missing = len(order) - len(records)
    if missing:
        raise ReftError(f"{out_dir / PREDICTIONS} lacks {missing} of this eval's "
                        f"{len(order)} (model, question) records")
    rows = summarize(records, k)
    results = {"split": split, "k": k, "rows": rows}
    (out_dir / RESULTS).write_text(json.dumps(results, indent=2) + "\n")
    plot_accuracy_vs_k(accuracy_vs_k(records, powers_of_two(k)), out_dir / PLOT)
    log(f"{split} split, k={k}:\n{format_table(rows, k)}")
    return rows


def evaluate_models(config, log=print, record_hook: RecordHook | None = None) -> pathlib.Path:
    """The whole eval; `record_hook(example, greedy_text) -> dict`, when given, adds an "extra"
    dict to each record (task-specific columns such as a chain check)."""
    primary = is_primary()
    log = log if primary else (lambda *_: None)
    k = check_settings(config)
    workdir = pathlib.Path(config.workdir)
    names = model_names(config)
    paths = {name: resolve_model(name, workdir) for name in names}
    tokenizers = {name: load_tokenizer(path) for name, path in paths.items()}
    examples = eval_examples(config)
    rm_path = resolve_reward_model(config)
    if rm_path is not None:
        check_reward_model_tokenizer(rm_path, paths)
    out_dir = workdir / "eval"
    predictions = out_dir / PREDICTIONS
    wanted = {(name, ex.id) for name in names for ex in examples}
    if len(wanted) != len(names) * len(examples):
        raise ReftError(f"config.eval.split={config.eval.split!r}: question ids are not unique")
    check_previous(predictions, wanted, k, rm_path is not None)

    done = completed(predictions)
    any_process(False)  # every process has read the file before process 0 appends to it
    settings = PredictSettings.from_config(config)
    batch = config.eval.batch_size
    todo = {name: [s for s in range(0, len(examples), batch)
                   if any((name, ex.id) not in done for ex in examples[s:s + batch])]
            for name in names}
    log(f"eval: {', '.join(f'{n} ({paths[n]})' for n in names)} on {len(examples)} "
        f"{config.eval.split} questions, k={k}, reward model: {rm_path or 'none (no rerank)'}; "
        f"{len(done & wanted)} of {len(wanted)} (model, question) pairs already done")
    out_dir.mkdir(parents=True, exist_ok=True)
    pool = SandboxPool(timeout=config.eval.program_timeout) if (
        primary and config.data.style == PROGRAM and any(todo.values())) else None
    writer = PredictionWriter(predictions) if primary else None
    try:
        mesh = config_mesh(config)
        reward_model = None
        if rm_path is not None and any(todo.values()):
            reward_model, _ = load_reward_model(rm_path, dtype=config.model.dtype,
                                                param_dtype=config.model.param_dtype)
        for name in names:
            if not todo[name]:
                continue
            model, _ = load_pretrained(paths[name], dtype=config.model.dtype,
                                       param_dtype=config.model.param_dtype)
            predictor = Predictor(name, place_model(model, mesh), tokenizers[name], settings,
                                  reward_model, pool, mesh, record_hook)
            _run_model(predictor, examples, todo[name], batch, done, writer, config.seed, primary)
            del model, predictor
    finally:
        if writer is not None:
            writer.close()
        if pool is not None:
            pool.close()
    if primary:
        write_results(out_dir, str(config.eval.split), k, names, examples, log)
        curves = training_curves(workdir)
        if curves:
            plot_training_curves(curves, out_dir / CURVES)
            log(f"validation accuracy over training: {out_dir / CURVES}")
    return out_dir


def _run_model(predictor: Predictor, examples: list[Example], starts: list[int], batch: int,
               done: set, writer: PredictionWriter | None, seed: int, primary: bool) -> None:
    """The batches of one model that still have undone questions, with a progress bar.

    A batch is always sampled whole (done questions included, their records not written again):
    its key and shapes are then those of an uninterrupted eval, which draws the same samples.
    """
    from tqdm import tqdm

    name = predictor.name
    remaining = sum(1 for s in starts for ex in examples[s:s + batch] if (name, ex.id) not in done)
    bar = tqdm(total=len(examples), initial=len(examples) - remaining, desc=f"eval {name}",
               unit="question", dynamic_ncols=True, disable=not primary)
    try:
        for start in starts:
            chunk = examples[start:start + batch]
            rng = jax.random.fold_in(jax.random.key(seed), start)
            for record in predictor(chunk, rng, primary):
                if (record["model"], record["id"]) in done:
                    continue
                writer.write(record)
                bar.update(1)
    finally:
        bar.close()
