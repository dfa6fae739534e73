"""Math word-problem data: loaders (GSM8K, mwp_ReFT files, synthetic, your own data), P-CoT for
GSM8K, prompts.

Plain host code: imports nothing from models, training or jax.
"""

from reft_jax.data.gsm8k import load_gsm8k_hub, load_gsm8k_jsonl
from reft_jax.data.loading import NAMES, default_data_dir, load_examples, load_file
from reft_jax.data.mwp import load_mwp_json
from reft_jax.data.own_data import (available_splits, load_split, load_table,
                                    load_train_and_validation)
from reft_jax.data.own_rows import Fields, plain_number
from reft_jax.data.numbers import first_number, parse_number
from reft_jax.data.pcot_gsm8k import gsm8k_program, load_gsm8k_programs
from reft_jax.data.prompts import (
    ANSWER_MARKER,
    build_prompt,
    build_rl_prompt,
    build_sft_prompt,
    build_target,
    program_header,
    wrap_chat,
)
from reft_jax.data.records import CHOICE, NL, NUMERIC, PROGRAM, STYLES, DataError, Example, check_style
from reft_jax.data.synthetic import generate as generate_synthetic

__all__ = [
    "ANSWER_MARKER", "CHOICE", "NAMES", "NL", "NUMERIC", "PROGRAM", "STYLES", "DataError", "Example",
    "Fields", "available_splits", "build_prompt", "build_rl_prompt", "build_sft_prompt",
    "build_target", "check_style", "default_data_dir", "first_number", "generate_synthetic",
    "gsm8k_program", "load_examples", "load_file", "load_gsm8k_hub", "load_gsm8k_jsonl",
    "load_gsm8k_programs", "load_mwp_json", "load_split", "load_table", "load_train_and_validation",
    "parse_number", "plain_number", "program_header", "wrap_chat",
]
