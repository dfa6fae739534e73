"""The RL stages end to end on a tiny model: learning signal on a toy reward (PPO, GRPO, RLOO,
online self-training), exact first ratio and zero KL at the start, bitwise resume, robustness,
and clear errors before any work."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from safetensors.numpy import load_file

from reft_jax.errors import ReftError
from reft_jax.rewards import Judged
from reft_jax.train.online_sl import run_online_sl
from reft_jax.train.ppo import run_reft
from reft_jax.train.sft import run_sft
from tests.test_train_sft_stage import make_config, write_dataset


def write_splits(folder, n):
    """A dataset folder: train.jsonl with n records and a small test.jsonl."""
    return write_dataset(folder / "train.jsonl", n=n, n_test=4)
from tests.tiny_hf import save_tiny

pytestmark = pytest.mark.slow

GOOD = {f"w{i}" for i in range(4, 50)}  # half of the 92 words: about half of the first tokens at start


def toy_judge(config, pool):
    """Reward 1 when the response starts with a word of GOOD, else 0."""
    def judge(texts, rows):
        first = [t.split()[0] if t.split() else "" for t in texts]
        return [Judged(float(w in GOOD), w in GOOD, True, None) for w in first]
    return judge


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A tiny Llama, a dataset, and one SFT epoch to start RL from."""
    root = tmp_path_factory.mktemp("warm")
    save_tiny(root / "tiny", "llama")
    data = write_splits(root / "data", n=20)
    config = make_config(root, root / "tiny", data, epochs=1)
    run_sft(config, log=lambda *_: None)
    return root, data


def rl_config(tmp_path, warm, **reft):
    root, data = warm
    c = make_config(tmp_path, root / "tiny", data)
    c.reft.warmup_checkpoint = str(root / "run" / "sft" / "epoch_1")
    c.reft.epochs = 1
    c.reft.rollout_batch = 4
    c.reft.samples_per_question = 4
    c.reft.max_length = 12  # prompts are 8 tokens: responses of at most 4
    c.reft.learning_rate = 1e-2
    c.reft.kl_coef = 0.01
    c.reft.save_every_steps = 0
    c.eval.max_new_tokens = 4
    for key, value in reft.items():
        c.reft[key] = value
    return c


def train_records(config, stage="reft"):
    path = pathlib.Path(config.workdir) / stage / "metrics.jsonl"
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["kind"] == "train"]


@pytest.mark.parametrize("advantage", ["gae", "grpo", "rloo"])
def test_ppo_raises_a_toy_reward(tmp_path, warm, advantage):
    config = rl_config(tmp_path, warm, advantage=advantage, epochs=4)
    run_reft(config, log=lambda *_: None, make_judge=toy_judge)
    scores = [r["score"] for r in train_records(config)]
    assert len(scores) == 16
    first, last = np.mean(scores[:4]), np.mean(scores[-4:])  # 64 samples each
    assert last > first + 0.2 and last > 0.7, scores


def test_online_self_training_raises_a_toy_reward(tmp_path, warm):
    config = rl_config(tmp_path, warm, epochs=4)
    run_online_sl(config, log=lambda *_: None, make_judge=toy_judge)
    scores = [r["score"] for r in train_records(config, "online_sl")]
    first, last = np.mean(scores[:4]), np.mean(scores[-4:])
    assert last > first + 0.15, scores


def test_first_ratio_is_one_and_kl_to_the_warmup_is_zero(tmp_path, warm):
    config = rl_config(tmp_path, warm)
    run_reft(config, log=lambda *_: None, make_judge=toy_judge)
    first = train_records(config)[0]
    assert first["kl"] == 0.0  # policy and reference are the same weights
    assert first["first_approx_kl"] < 1e-12  # old log-probs from the forward the update uses


def final_params(config, stage="reft"):
    return load_file(pathlib.Path(config.workdir) / stage / "last" / "model.safetensors")


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, warm):
    straight = rl_config(tmp_path / "a", warm, epochs=2, minibatch_size=8)
    run_reft(straight, log=lambda *_: None, make_judge=toy_judge)
    interrupted = rl_config(tmp_path / "b", warm, epochs=2, minibatch_size=8, stop_after_step=3)
    run_reft(interrupted, log=lambda *_: None, make_judge=toy_judge)
    assert not (tmp_path / "b" / "run" / "reft" / "last").exists()
    interrupted.reft.stop_after_step = 0
    messages = []
    run_reft(interrupted, log=messages.append, make_judge=toy_judge)
    assert any("resuming from step 3" in m for m in messages)
    a, b = final_params(straight), final_params(interrupted)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    ra, rb = train_records(straight), train_records(interrupted)
    assert [r["score"] for r in ra] == [r["score"] for r in rb]
    outputs = tmp_path / "a" / "run" / "reft"
    assert (outputs / "best" / "model.safetensors").exists()
    assert (outputs / "metrics.png").stat().st_size > 0
    kinds = [json.loads(line)["kind"] for line in (outputs / "metrics.jsonl").read_text().splitlines()]
    assert kinds.count("validation") == 2 and kinds.count("test") == 1


def constant_judge(value, correct=False):
    def make(config, pool):
        return lambda texts, rows: [Judged(value, correct, value > 0, None) for _ in texts]
    return make


@pytest.mark.parametrize("case", ["no reward, no validation", "all equal, all at the limit"])
def test_degenerate_rollouts_stay_finite(tmp_path, warm, case):
    config = rl_config(tmp_path, warm)
    if case == "no reward, no validation":
        config.data.validation_fraction = 0.0
        judge = constant_judge(0.0)
    else:
        judge = constant_judge(1.0, True)
        config.sft.max_length = 9  # one response token: every row hits the length limit
        config.reft.max_length = 9
    run_reft(config, log=lambda *_: None, make_judge=judge)
    records = train_records(config)
    for r in records:
        assert all(np.isfinite(v) for k, v in r.items() if k != "kind"), r
    if case != "no reward, no validation":
        # one token each; it stopped the row by the limit unless it happened to be EOS
        assert all(r["response_length"] == 1.0 and r["truncated"] > 0.8 for r in records)
    assert (pathlib.Path(config.workdir) / "reft" / "best" / "model.safetensors").exists()


def test_a_sandbox_failure_costs_one_answer(tmp_path, warm):
    """P-CoT on the synthetic set, straight from the random tiny model: every program it writes
    fails in the sandbox and scores 0, and the run goes on."""
    root, _ = warm
    config = rl_config(tmp_path, warm)
    config.data.style, config.data.dataset = "program", "synthetic"
    config.data.max_train_examples = 20
    config.reft.warmup_checkpoint = str(root / "tiny")
    config.reft.max_length, config.reft.max_prompt_length = 200, 150
    run_reft(config, log=lambda *_: None)
    records = train_records(config)
    assert len(records) == 4 and all(np.isfinite(r["loss"]) for r in records)
    assert all(r["score"] == 0.0 and r["extractable"] == 0.0 for r in records)


def test_bad_setups_fail_before_any_work(tmp_path, warm):
    root, data = warm
    config = rl_config(tmp_path, warm)
    config.reft.warmup_checkpoint = str(tmp_path / "missing")
    with pytest.raises(ReftError, match="warm-up checkpoint"):
        run_reft(config, log=lambda *_: None)
    other = tmp_path / "other"
    save_tiny(other, "llama", vocab_size=100)
    from tests.tiny_hf import tiny_tokenizer
    tok = tiny_tokenizer()
    tok.add_tokens(["extra1", "extra2", "extra3", "extra4"])
    tok.save_pretrained(other)
    config = rl_config(tmp_path, warm)
    config.reft.warmup_checkpoint = str(other)
    with pytest.raises(ReftError, match="another tokenizer"):
        run_reft(config, log=lambda *_: None)
    for key, value, message in [("rollout_batch", 64, "larger than"),
                                ("minibatch_size", 3, "does not divide"),
                                ("advantage", "grpo", None)]:
        config = rl_config(tmp_path, warm, **{key: value})
        if key == "advantage":
            config.reft.samples_per_question = 1
            message = "samples_per_question"
        with pytest.raises(ReftError, match=message):
            run_reft(config, log=lambda *_: None)
    assert not (tmp_path / "run" / "reft" / "checkpoints").exists() or not any(
        (tmp_path / "run" / "reft" / "checkpoints").iterdir())


def test_offline_self_training_keeps_distinct_correct_samples_and_trains(tmp_path, warm):
    from reft_jax.data.records import Example
    from reft_jax.train.offline_sl import correct_sequences, run_offline_sl
    from tests.tiny_hf import tiny_tokenizer

    tok = tiny_tokenizer()
    question = Example("q1", "w5 w6", "3")
    samples = {"q1": [{"text": "w7 w8", "correct": True}, {"text": "w9", "correct": False},
                      {"text": "w10", "correct": True}, {"text": "w11", "correct": True}]}
    seqs = correct_sequences([question], samples, tok, "nl", False, max_correct=2)
    prompt = tok("Question:\nw5 w6\nAnswer reasoning:\n", add_special_tokens=False)["input_ids"]
    w = tok.convert_tokens_to_ids
    assert [s.ids for s in seqs] == [tuple(prompt + [w("w7"), w("w8"), 2]),
                                     tuple(prompt + [w("w10"), 2])]
    assert all(s.target_start == len(prompt) for s in seqs)

    config = rl_config(tmp_path, warm)
    config.offline.samples_per_question, config.offline.epochs = 2, 1
    run_offline_sl(config, log=lambda *_: None)
    stage = pathlib.Path(config.workdir) / "offline_sl"
    assert (stage / "epoch_1" / "model.safetensors").exists() and (stage / "best.json").exists()
    assert (stage / "samples" / "samples.jsonl").read_text().count("\n") == 16  # every question
