"""The SFT stage end to end on a tiny model: resume, NaN, SIGTERM, outputs, bad input."""

from __future__ import annotations

import json
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from reft_jax.config import default_config
from reft_jax.data import DataError
from reft_jax.errors import ReftError
from reft_jax.train.sft import epoch_folder, run_sft
from tests.conftest import REPO
from tests.tiny_hf import save_tiny

pytestmark = pytest.mark.slow


def write_dataset(path, n=12, n_test=4):
    """GSM8K-format records whose words the tiny word-level tokenizer knows: `n` in `path` (a
    ``train.jsonl``) and `n_test` more in ``test.jsonl`` beside it. Returns the folder, which is
    the dataset (a single file has no test split)."""
    assert path.name == "train.jsonl", "the folder's files are named by split"
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def rows(count, offset):
        for i in range(count):
            q = " ".join(f"w{j}" for j in rng.integers(4, 90, 5))
            a = " ".join(f"w{j}" for j in rng.integers(4, 90, 3 + i % 4))
            yield json.dumps({"question": q, "answer": f"{a}\n#### {offset + i}"}) + "\n"

    path.write_text("".join(rows(n, 0)))
    path.with_name("test.jsonl").write_text("".join(rows(n_test, n)))
    return path.parent


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_llama")
    save_tiny(folder, "llama")
    return folder


def make_config(tmp_path, model, dataset, **sft):
    c = default_config()
    c.workdir = str(tmp_path / "run")
    c.stages = "sft"
    c.model.source = str(model)
    c.data.dataset = str(dataset)
    c.data.validation_fraction = 0.2
    c.sft.epochs = 2
    c.sft.batch_size = 4
    c.sft.learning_rate = 1e-3
    c.sft.save_every_steps = 2
    c.eval.max_examples = 2
    c.eval.max_new_tokens = 4
    c.eval.batch_size = 2
    for key, value in sft.items():
        c.sft[key] = value
    return c


def final_params(config, epoch=2):
    return load_file(epoch_folder(pathlib.Path(config.workdir), epoch) / "model.safetensors")


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, tiny_model):
    data = write_dataset(tmp_path / "train.jsonl")
    straight = make_config(tmp_path / "a", tiny_model, data)
    run_sft(straight, log=lambda *_: None)
    interrupted = make_config(tmp_path / "b", tiny_model, data, stop_after_step=3)
    run_sft(interrupted, log=lambda *_: None)
    assert not epoch_folder(tmp_path / "b" / "run", 2).exists()
    interrupted.sft.stop_after_step = 0
    messages = []
    run_sft(interrupted, log=messages.append)
    assert any("resuming from step 3" in m for m in messages)
    a, b = final_params(straight), final_params(interrupted)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # the run left its records behind
    records = [json.loads(x) for x in (tmp_path / "a/run/sft/metrics.jsonl").read_text().splitlines()]
    # 12 records, 2 held out for validation, batches of 4: 2 steps per epoch, 2 epochs
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    assert {"validation", "test"} <= {r["kind"] for r in records}
    assert (tmp_path / "a/run/sft/metrics.png").stat().st_size > 0
    assert any((tmp_path / "a/run/sft/tensorboard").iterdir())


def checkpoint_steps(workdir):
    folder = pathlib.Path(workdir) / "sft" / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def checkpoint(workdir, step):
    """(params, meta) of an orbax checkpoint, read without the trainer's code."""
    import orbax.checkpoint as ocp

    folder = (pathlib.Path(workdir) / "sft" / "checkpoints" / str(step)).resolve()
    state = ocp.StandardCheckpointer().restore(folder / "state")
    meta = json.loads(next((folder / "meta").glob("*")).read_text()) \
        if (folder / "meta").is_dir() else json.loads((folder / "meta").read_text())
    return state["params"], meta


def flat(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from flat(value, f"{prefix}{key}/")
    else:
        yield prefix[:-1], np.asarray(tree)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_model):
    """A rate of 1e30: step 1 is finite (its loss is taken before the update) and leaves
    parameters near 1e30, so step 2's loss overflows. The run stops at step 2 and keeps step 1."""
    data = write_dataset(tmp_path / "train.jsonl")
    config = make_config(tmp_path, tiny_model, data, learning_rate=1e30, warmup_ratio=0.0,
                         save_every_steps=1)
    with pytest.raises(ReftError, match=r"non-finite loss or gradient at step 2; stopped\. The last "
                                        r"good checkpoint \(step 1\)"):
        run_sft(config, log=lambda *_: None)
    workdir = tmp_path / "run"
    assert checkpoint_steps(workdir) == [1]
    params, meta = checkpoint(workdir, 1)
    assert (meta["step"], meta["epoch"], meta["index"]) == (1, 0, 1)
    saved = dict(flat(params))
    assert saved and all(np.isfinite(v).all() for v in saved.values())
    assert max(np.abs(v).max() for v in saved.values()) > 1e29  # the state after step 1, not before
    records = [json.loads(x) for x in (workdir / "sft/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1]
    assert np.isfinite(records[0]["loss"])
    assert not epoch_folder(workdir, 1).exists()


CLI_OVERRIDES = {"stages": "sft", "sft.epochs": 1, "sft.batch_size": 4, "sft.save_every_steps": 0,
                 "eval.max_examples": 2, "eval.max_new_tokens": 4, "eval.batch_size": 2}


def gsm8k_config(**overrides):
    """configs/gsm8k.py with `--config.<key>=<value>` overrides, built here as the CLI builds it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gsm8k_config", REPO / "configs" / "gsm8k.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        (config[section] if section else config)[name] = value
    return config


def test_sigterm_saves_mid_epoch_exits_zero_and_the_run_resumes_to_the_same_end(tmp_path, tiny_model):
    data = write_dataset(tmp_path / "train.jsonl", n=400)  # 380 after validation: 95 steps
    settings = dict(CLI_OVERRIDES, **{"model.source": str(tiny_model), "data.dataset": str(data)})
    cmd = [sys.executable, "-m", "reft_jax.main", "--config=configs/gsm8k.py",
           f"--config.workdir={tmp_path / 'run'}"]
    cmd += [f"--config.{k}={v}" for k, v in settings.items()]
    cmd += ["--config.stages=sft,eval"]  # a stopped stage must not hand an unfinished run on
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = tmp_path / "run" / "sft" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no training step within the time limit"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    stopped = re.search(r"stopped at step (\d+) \(SIGTERM\)", out)
    assert stopped, out
    step = int(stopped.group(1))
    assert 2 <= step < 95, "the stop should fall inside the epoch"
    assert "not running eval" in out and "== stage eval ==" not in out, out
    assert checkpoint_steps(tmp_path / "run") == [step]
    assert not epoch_folder(tmp_path / "run", 1).exists()

    resumed = gsm8k_config(workdir=str(tmp_path / "run"), **settings)
    messages = []
    run_sft(resumed, log=messages.append)
    assert any(f"resuming from step {step} (epoch 1, step {step} in it)" in m for m in messages)
    straight = gsm8k_config(workdir=str(tmp_path / "straight"), **settings)
    run_sft(straight, log=lambda *_: None)
    a, b = final_params(straight, epoch=1), final_params(resumed, epoch=1)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines()
             if json.loads(x)["kind"] == "train"]
    assert steps == list(range(1, 96))  # each step once, across the two processes


def test_a_checkpoint_of_another_seed_or_dataset_size_is_not_resumed(tmp_path, tiny_model):
    data = write_dataset(tmp_path / "train.jsonl")
    config = make_config(tmp_path, tiny_model, data, stop_after_step=1)
    run_sft(config, log=lambda *_: None)
    assert checkpoint_steps(tmp_path / "run") == [1]
    config.seed = 43
    with pytest.raises(ReftError, match=r"holds a run with other settings \(seed: \[42\] there, "
                                        r"\[43\] now\); use a new workdir or the same settings"):
        run_sft(config, log=lambda *_: None)
    bigger = write_dataset(tmp_path / "bigger" / "train.jsonl", n=20)  # 16 rows: 4 steps/epoch
    config = make_config(tmp_path, tiny_model, bigger, stop_after_step=1)
    with pytest.raises(ReftError, match=r"holds a run with other settings \(steps_per_epoch: \[2\] "
                                        r"there, \[4\] now\)"):
        run_sft(config, log=lambda *_: None)
    assert checkpoint_steps(tmp_path / "run") == [1]  # nothing written over


def test_bad_input_is_a_clear_error(tmp_path, tiny_model):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError):
        run_sft(make_config(tmp_path / "e", tiny_model, empty), log=lambda *_: None)
    data = write_dataset(tmp_path / "train.jsonl", n=6)
    with pytest.raises(DataError, match="larger than the dataset"):
        run_sft(make_config(tmp_path / "b", tiny_model, data, batch_size=64), log=lambda *_: None)


def test_missing_warmup_checkpoint_is_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "reft_jax.main", "--config=configs/gsm8k.py",
                          "--config.reft.warmup_checkpoint=/no/such/epoch_2"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "warmup_checkpoint" in out.stderr and "Traceback" not in out.stderr


def transformers_greedy_answers(folder, questions, max_new_tokens):
    """The oracle for the accuracy path: transformers' greedy generate on the exported model, from
    the paper's prompt written out here, the answer read after the marker by hand."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    answers = []
    for question in questions:
        prompt = "Question:\n" + question + "\nAnswer reasoning:\n"
        ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new_tokens, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)
        text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        answers.append(text.rpartition("Therefore, the answer is:")[2].strip().split("\n")[0])
    return answers


EPOCHS = 2


def test_an_overfit_model_scores_above_zero_and_the_number_is_right(tmp_path):
    from tests.tiny_vocab import save_vocab_model, sum_rows, write_splits

    pairs = [(3, 4), (12, 5), (7, 8), (21, 30)]
    test_pairs = [(12, 5), (3, 4), (6, 9)]  # two questions it trained on, one it did not
    data = write_splits(tmp_path / "sums", train=sum_rows(pairs) * 80, test=sum_rows(test_pairs))
    save_vocab_model(tmp_path / "model", data)
    config = make_config(tmp_path, tmp_path / "model", data, epochs=EPOCHS, learning_rate=1e-2)
    config.data.validation_fraction = 0.02
    config.eval.max_examples, config.eval.max_new_tokens, config.eval.batch_size = 0, 20, 8
    run_sft(config, log=lambda *_: None)
    records = [json.loads(x) for x in (tmp_path / "run/sft/metrics.jsonl").read_text().splitlines()]
    (test,) = [r for r in records if r["kind"] == "test"]
    answers = transformers_greedy_answers(epoch_folder(tmp_path / "run", EPOCHS),
                                          [q["question"] for q in sum_rows(test_pairs)], 20)
    expected = np.mean([a == str(x + y) for a, (x, y) in zip(answers, test_pairs)])
    assert test["examples"] == 3
    assert test["accuracy"] == pytest.approx(expected)
    assert test["accuracy"] >= 2 / 3, answers  # it learned the two sums it saw
    validation = [r for r in records if r["kind"] == "validation"]
    assert len(validation) == EPOCHS and validation[-1]["accuracy"] > 0
