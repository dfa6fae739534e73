"""The warm-up rule that decides where RL branches off SFT (`reft.warmup_min_accuracy`)."""

import json

from reft_jax.train.rl_stage import first_good_epoch


def ledger(tmp_path, accuracies: dict):
    (tmp_path / "sft").mkdir(exist_ok=True)
    (tmp_path / "sft" / "validation.json").write_text(json.dumps(accuracies))
    return tmp_path


def test_warmup_is_the_first_epoch_past_the_threshold_that_leaves_room_for_rl(tmp_path):
    run = ledger(tmp_path, {"5": 0.1, "10": 0.4, "15": 0.5, "20": 0.6})
    assert first_good_epoch(run, 0.35, rl_epochs=5).name == "epoch_10"
    assert first_good_epoch(run, 0.45, rl_epochs=5).name == "epoch_15"
    # epoch 20 reached 0.55 but leaves no SFT epochs for RL's 5: the best of epochs <= 15
    assert first_good_epoch(run, 0.55, rl_epochs=5).name == "epoch_15"


def test_without_a_good_epoch_the_best_one_with_room_for_rl_starts_rl(tmp_path):
    run = ledger(tmp_path, {"5": 0.2, "10": 0.3, "15": 0.3, "20": 0.32, "25": 0.31})
    # 20 and 25 are better but leave fewer than 10 SFT epochs after them; of equal ones, the first
    assert first_good_epoch(run, 0.35, rl_epochs=10).name == "epoch_10"
    # an SFT run shorter than RL: every evaluated epoch counts
    assert first_good_epoch(run, 0.35, rl_epochs=30).name == "epoch_20"
