"""The paper's runs, one cell per (model, dataset, style), without a file per cell.

    python -m reft_jax.main --config=configs/paper.py:codellama7b,gsm8k,program

ml_collections passes the text after the colon to `get_config`. Models: codellama7b and
galactica6.7b (the paper's, 8 GPUs or a TPU slice), qwen0.5b and qwen1.5b (Qwen2.5 Instruct, for
one GPU). Datasets: gsm8k, svamp, mathqa (multiple choice), mathqa-numeric. Styles: nl (N-CoT),
program (P-CoT).

Every hyperparameter the cells share is already `default_config()`'s (the paper's: SFT 40 epochs
at lr 1e-5, batch 48, length 1024; PPO 300 epochs of 32 questions x 1 sample, lengths 300/700,
lr 3e-7, 2 PPO epochs). Only what differs between cells is set here, each with its source:
REFT_SPEC.md (../shared/docs) and the reference code's scripts (lqtrung1998/mwp_ReFT,
exps/paper_exps/{SFT,ReFT}/*.sh), which agree with it.
"""

from reft_jax.config import default_config
from reft_jax.errors import ReftError

PAPER_MODELS = {
    "codellama7b": "codellama/CodeLlama-7b-hf",
    "galactica6.7b": "facebook/galactica-6.7b",
}
ONE_GPU_MODELS = {
    "qwen0.5b": "Qwen/Qwen2.5-0.5B-Instruct",
    "qwen1.5b": "Qwen/Qwen2.5-1.5B-Instruct",
}
MODELS = {**PAPER_MODELS, **ONE_GPU_MODELS}
DATASETS = ("gsm8k", "svamp", "mathqa", "mathqa-numeric")
STYLES = ("nl", "program")
EXAMPLE = "codellama7b,gsm8k,program"

# REFT_SPEC.md "Warm-up (SFT) settings": ReFT starts from SFT epoch 2 (the default), except
# MathQA N-CoT (5) and MathQA-numeric N-CoT (10); the reference scripts start from the same.
WARMUP_EPOCH = {("mathqa", "nl"): 5, ("mathqa-numeric", "nl"): 10}
# REFT_SPEC.md "ReFT (PPO) settings": KL coefficient N-CoT 0.05, P-CoT 0.01, MathQA-numeric
# N-CoT 0.01 (the reference scripts' kl_coef).
KL_COEF = {"nl": 0.05, "program": 0.01}
KL_COEF_BY_CELL = {("mathqa-numeric", "nl"): 0.01}
# mathqa-numeric with P-CoT: the reference code has no script for it (its SFT and ReFT scripts
# run MathQA-numeric with N-CoT only); it takes the spec's general P-CoT values above.

# The reference code's per-GPU micro-batches on 8 GPUs (exps/paper_exps/*/_template.sh): SFT 3
# rows x 2 accumulation steps (8 x 3 x 2 = the global 48), PPO 4 rows (8 x 4 = 32 questions).
SFT_ROWS_PER_DEVICE = 3
PPO_ROWS_PER_DEVICE = 4
PAPER_DEVICES = 8


def parse_cell(cell: str | None) -> tuple[str, str, str]:
    """`model,dataset,style` -> its three names; a wrong one is an error listing the choices."""
    if not cell:
        raise ReftError("configs/paper.py needs a cell: --config=configs/paper.py:"
                        f"<model>,<dataset>,<style>, e.g. configs/paper.py:{EXAMPLE}")
    parts = [p.strip() for p in cell.split(",")]
    if len(parts) != 3:
        raise ReftError(f"configs/paper.py:{cell}: a cell is <model>,<dataset>,<style>, "
                        f"e.g. configs/paper.py:{EXAMPLE}")
    for what, name, choices in zip(("model", "dataset", "style"), parts,
                                   (tuple(MODELS), DATASETS, STYLES)):
        if name not in choices:
            raise ReftError(f"configs/paper.py:{cell}: unknown {what} {name!r}; "
                            f"choose from {', '.join(choices)}")
    return parts[0], parts[1], parts[2]


def get_config(cell: str | None = None):
    model, dataset, style = parse_cell(cell)
    c = default_config()
    c.workdir = f"runs/paper/{model}_{dataset}_{style}"
    c.model.source = MODELS[model]
    c.data.dataset = dataset
    c.data.style = style
    c.reft.warmup_epoch = WARMUP_EPOCH.get((dataset, style), c.reft.warmup_epoch)
    c.reft.kl_coef = KL_COEF_BY_CELL.get((dataset, style), KL_COEF[style])
    # REFT_SPEC.md: SFT in bf16; the reference runs accelerate's mixed_precision=bf16, i.e.
    # float32 parameters (param_dtype's default) with bf16 compute.
    c.model.dtype = "bfloat16"
    if model in PAPER_MODELS:
        # The reference shards optimizer state over its 8 GPUs (DeepSpeed ZeRO-2); ours is
        # ZeRO-3 style: parameters and Adam moments split over every device.
        c.mesh.data, c.mesh.fsdp = 1, -1
        c.sft.grad_accum = c.sft.batch_size // (PAPER_DEVICES * SFT_ROWS_PER_DEVICE)
        # `python -m reft_jax.plan` on 8 x 80 GB: without remat the SFT step plans at 89.9 and
        # the PPO update at 113.2 GiB per device; with full remat 20.0 and 23.3 (README table).
        c.model.remat = True
    else:
        # One GPU does the 8 GPUs' work in turn: the same per-device micro-batches, accumulated
        # into the same global batches (the same updates). Remat keeps the activations small.
        c.sft.grad_accum = c.sft.batch_size // SFT_ROWS_PER_DEVICE
        c.reft.grad_accum = c.reft.rollout_batch // PPO_ROWS_PER_DEVICE
        c.model.remat = True
    return c
