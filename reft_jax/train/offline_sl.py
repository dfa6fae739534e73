"""The paper's offline self-training baseline (`stages=offline_sl`).

Draw `offline.samples_per_question` samples per training question from the warm-up checkpoint
(the one ReFT starts from), keep up to `offline.max_correct` distinct correct ones per question,
and run SFT from the base model (`model.source`) on the gold chains of thought plus those
samples, for `offline.epochs` epochs with the `sft` settings. Outputs under
`<workdir>/offline_sl/` as SFT's under `sft/` (epoch folders, best.json chosen on validation).
The drawn samples are cached (`offline_sl/samples/`), so a resumed run does not draw again.
"""

from __future__ import annotations

import pathlib

from reft_jax.data.batching import Encoded, encode_prompt
from reft_jax.models import load_pretrained
from reft_jax.parallel.hosts import is_primary
from reft_jax.train.rl_stage import warmup_source
from reft_jax.train.rm_samples import DrawSettings, draw_samples
from reft_jax.train.sft import run_sft
from reft_jax.train.validation import train_and_validation


def correct_sequences(questions, samples: dict[str, list[dict]], tokenizer, style: str,
                      chat: bool, max_correct: int) -> list[Encoded]:
    """Prompt + sampled response + EOS for up to `max_correct` distinct correct samples of each
    question (the prompt tokenized as rollouts tokenize it, the response on its own)."""
    out = []
    for question in questions:
        kept = [s["text"] for s in samples.get(question.id, []) if s["correct"]][:max_correct]
        prompt = encode_prompt(question, tokenizer, style, chat)
        for text in kept:
            response = list(tokenizer(text, add_special_tokens=False)["input_ids"])
            out.append(Encoded(tuple(prompt + response + [tokenizer.eos_token_id]), len(prompt)))
    return out


def run_offline_sl(config, log=print) -> pathlib.Path:
    o, d = config.offline, config.data
    warmup = warmup_source(config)
    lm, tokenizer = load_pretrained(warmup, dtype=config.model.dtype,
                                    param_dtype=config.model.param_dtype)
    train, _ = train_and_validation(config)
    settings = DrawSettings(str(warmup), o.samples_per_question, 1.0, 0, config.reft.max_length - 1,
                            config.reft.max_length, config.seed, d.style, d.chat_template)
    folder = pathlib.Path(config.workdir) / "offline_sl" / "samples"
    samples = draw_samples(lm, tokenizer, train, settings, folder, config.eval.batch_size,
                           config.eval.program_timeout, primary=is_primary(), log=log)
    del lm
    extra = correct_sequences(train, samples, tokenizer, d.style, d.chat_template, o.max_correct)
    log(f"offline_sl: {len(extra)} correct samples of the warm-up model for {len(train)} "
        f"questions (at most {o.max_correct} distinct per question), plus the gold chains")
    return run_sft(config, log, stage="offline_sl", extra=extra, epochs=o.epochs)
