"""Every setting of a run, with the paper's defaults (../shared/docs/REFT_SPEC.md).

Config files in configs/ start from `default_config()` and change only what their dataset or
style needs. A deviation from the paper is a value here and a sentence in the README.
"""

from __future__ import annotations

import ml_collections


def default_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.workdir = "runs/default"
    c.seed = 42
    c.stages = "sft,reft,eval"  # comma-separated, run in order

    c.model = ml_collections.ConfigDict()
    c.model.source = "codellama/CodeLlama-7b-hf"  # HF folder, hub id, or .gguf file
    c.model.dtype = "float32"  # compute dtype: float32 or bfloat16 (the paper trains in bf16)
    c.model.param_dtype = "float32"
    c.model.remat = False  # recompute layers in the backward pass (less memory, more time)
    c.model.remat_policy = "full"  # what remat keeps: "full" (layer inputs) or "dots" (+ products)

    # model.source="scratch": the init stage builds a tokenizer from the training corpus and a
    # Llama-style model of this size with random weights, in <workdir>/scratch (the quickstart).
    c.scratch = ml_collections.ConfigDict()
    c.scratch.hidden_size = 64
    c.scratch.num_layers = 2
    c.scratch.num_heads = 4
    c.scratch.intermediate_size = 256
    c.scratch.max_positions = 256

    # Device mesh (see reft_jax.parallel): batch rows split over data x fsdp, parameters split
    # along their embedding axis over fsdp and along heads / MLP width / vocabulary over
    # tensor. One size may be -1: all the devices the others leave.
    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1
    c.mesh.fsdp = 1
    c.mesh.tensor = 1

    # Several processes (TPU pod hosts, GPU nodes): every process runs the same command with
    # enabled=True. On TPU pods and under SLURM JAX finds the rest; elsewhere set all three.
    c.distributed = ml_collections.ConfigDict()
    c.distributed.enabled = False
    c.distributed.coordinator_address = ""  # host:port of process 0
    c.distributed.num_processes = 0
    c.distributed.process_id = -1
    # A process silent this long is lost (killed, OOM, preempted): the others stop, naming it,
    # and the same command resumes from the last checkpoint (reft_jax/parallel/watchdog.py).
    c.distributed.heartbeat_timeout_s = 100

    c.data = ml_collections.ConfigDict()
    c.data.dataset = "gsm8k"  # a dataset name or a file path
    c.data.style = "nl"  # "nl" (N-CoT) or "program" (P-CoT)
    c.data.train_split = "train"
    c.data.test_split = "test"
    c.data.validation_fraction = 0.05  # carved from train; checkpoints are chosen on it, never on test
    c.data.chat_template = False  # wrap prompts in the tokenizer's chat template (instruct models)
    c.data.max_train_examples = 0  # use only the first N training records (a quick first try); 0 = all
    c.data.data_dir = ""  # where named datasets live; "" = ../shared/data beside the repository
    # Your own data (README "Your own data"; reft_jax/data/own_data.py). `dataset` may also be a
    # folder with one file per split, a `datasets` save_to_disk folder, or hub:<id>; a file given
    # here is that split, whatever `dataset` says. A validation split, when the source has one,
    # replaces the share carved from train.
    c.data.train_file = ""
    c.data.test_file = ""
    c.data.validation_file = ""
    c.data.validation_split = "validation"
    c.data.hub_config = ""  # the `datasets` config name of a hub:<id> dataset, e.g. "main"
    # Which columns hold what (jsonl/json/parquet/csv tables, `datasets` folders, hub:<id>):
    c.data.question_field = "question"
    c.data.answer_field = "answer"  # a number, an option letter, or GSM8K's "...\n#### 72"
    c.data.cot_field = ""  # the reasoning (N-CoT text or a P-CoT program); "" = none or GSM8K's
    c.data.choices_field = ""  # multiple choice: a list of options, appended as "a ) .. , b ) .."
    c.data.answer_type = ""  # "numeric" or "choice"; "" = choice when choices_field is set
    c.data.drop_unparsable = False  # True: leave out (and count) rows whose gold is not a number

    c.sft = ml_collections.ConfigDict()
    c.sft.epochs = 40  # the SFT baseline; ReFT starts from the epoch given in reft.warmup_epoch
    c.sft.learning_rate = 1e-5
    c.sft.warmup_ratio = 0.1
    c.sft.weight_decay = 0.0
    c.sft.adam_eps = 1e-8
    c.sft.grad_clip = 1.0
    c.sft.batch_size = 48
    c.sft.grad_accum = 1
    c.sft.max_length = 1024
    c.sft.save_every_steps = 500
    c.sft.keep_checkpoints = 3
    c.sft.eval_every_epochs = 1  # validation (and the best-epoch choice) every k epochs and the last
    c.sft.stop_after_step = 0  # >0: save and exit cleanly at this step (time-boxed jobs); 0 = off

    c.reft = ml_collections.ConfigDict()
    c.reft.warmup_epoch = 2  # which SFT epoch's checkpoint starts RL (MathQA N-CoT: 5)
    c.reft.warmup_checkpoint = ""  # or an explicit path to one
    c.reft.warmup_min_accuracy = 0.0  # > 0: start from the first SFT epoch whose validation
    # accuracy reached this (chosen on validation, never on test), instead of warmup_epoch
    c.reft.epochs = 300
    c.reft.rollout_batch = 32
    c.reft.samples_per_question = 1
    c.reft.temperature = 1.0
    c.reft.top_k = 0  # 0 = off
    c.reft.top_p = 1.0  # 1.0 = off
    c.reft.max_prompt_length = 300
    c.reft.max_length = 700
    c.reft.ppo_epochs = 2
    c.reft.learning_rate = 3e-7
    c.reft.adam_eps = 1e-8
    c.reft.weight_decay = 0.0
    c.reft.grad_clip = 1.0
    c.reft.kl_coef = 0.05  # N-CoT; P-CoT 0.01
    c.reft.gamma = 1.0
    c.reft.lam = 0.95
    c.reft.clip_ratio = 0.2
    c.reft.value_clip = 0.2
    c.reft.vf_coef = 5.0
    c.reft.partial_reward = 0.1  # 0 disables
    c.reft.minibatch_size = 0  # rows per PPO update; 0 = the whole rollout batch (the paper)
    c.reft.grad_accum = 1  # micro-batches per update (memory), same update
    c.reft.ref_dtype = ""  # the frozen reference's dtype; "" = model.dtype (bfloat16 halves it)
    c.reft.kv_cache_dtype = ""  # the rollout sampler's KV cache; "" = model.dtype
    c.reft.sampler_dtype = ""  # sample from a copy of the weights in this dtype; "" = the state's
    c.reft.save_every_steps = 50  # iterations between checkpoints (and at every epoch end)
    c.reft.keep_checkpoints = 3
    c.reft.stop_after_step = 0  # >0: save and exit cleanly after this iteration; 0 = off
    # Options beyond the paper, off by default:
    c.reft.kl_estimator = "k1"  # or "k3" (exp(ref - logp) - (ref - logp) - 1, never negative)
    c.reft.advantage = "gae"  # or "grpo" / "rloo": critic-free, scores compared within a question
    c.reft.entropy_coef = 0.0  # > 0: an entropy bonus in the loss
    c.reft.adaptive_kl = False  # True: Ziegler et al.'s controller steers kl_coef to kl_target
    c.reft.kl_target = 6.0  # per-sequence KL the adaptive controller aims at
    c.reft.kl_horizon = 10000
    c.reft.reward = "answer"  # or "process": the price task's chain check must pass too

    # The paper's offline self-training baseline (stages=offline_sl): SFT from the base model on
    # the gold chains plus up to max_correct distinct correct samples per question of the warm-up.
    c.offline = ml_collections.ConfigDict()
    c.offline.samples_per_question = 100
    c.offline.max_correct = 10
    c.offline.epochs = 20

    c.eval = ml_collections.ConfigDict()
    c.eval.max_new_tokens = 400
    c.eval.vote_samples = 100
    c.eval.vote_temperature = 1.0
    c.eval.vote_top_k = 50
    c.eval.program_timeout = 10.0
    c.eval.batch_size = 64
    c.eval.max_examples = 0  # evaluate on the first N examples of a split; 0 = all
    # stages=eval: models are stage names (sft = the SFT epoch chosen on validation, sft_last,
    # reft, online_sl, offline_sl) or HF folders / .gguf files; split is test, validation or train
    c.eval.models = "sft,reft"
    c.eval.split = "test"
    c.eval.reward_model = ""  # "" = <workdir>/rm/best when it exists, else no Rerank@k

    # stages=rm: the reranker's reward model, a 2-class head on a trunk initialised from
    # `source`, trained on that model's de-duplicated samples of the training questions.
    c.rm = ml_collections.ConfigDict()
    c.rm.source = ""  # the model to be reranked; "" = the SFT epoch chosen on validation
    c.rm.samples_per_question = 100
    c.rm.temperature = 1.0
    c.rm.top_k = 0  # 0 = off
    c.rm.max_new_tokens = 400
    c.rm.epochs = 3
    c.rm.learning_rate = 1e-6
    c.rm.batch_size = 24
    c.rm.grad_accum = 1
    c.rm.warmup_ratio = 0.1
    c.rm.weight_decay = 0.0
    c.rm.adam_eps = 1e-8
    c.rm.grad_clip = 1.0
    c.rm.max_length = 700  # (question, sample) sequences keep their last this many tokens
    c.rm.save_every_steps = 500
    c.rm.keep_checkpoints = 3
    c.rm.stop_after_step = 0  # >0: save and exit cleanly at this step; 0 = off
    return c
