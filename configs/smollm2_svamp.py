"""A first try on one laptop CPU (minutes): SmolLM2-135M from ../shared, SFT on 80 SVAMP problems.

Everything else keeps the paper's defaults; scale up by overriding, e.g.
`--config.data.max_train_examples=0 --config.sft.epochs=3`.
"""

from reft_jax.config import default_config


def get_config():
    c = default_config()
    c.workdir = "runs/smollm2_svamp"
    c.stages = "sft"
    c.model.source = "../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    c.data.dataset = "svamp"
    c.data.style = "nl"
    c.data.max_train_examples = 80
    c.data.validation_fraction = 0.1
    c.sft.epochs = 1
    c.sft.batch_size = 8
    c.sft.max_length = 256
    c.eval.max_examples = 16
    c.eval.max_new_tokens = 96
    c.eval.batch_size = 16
    return c
