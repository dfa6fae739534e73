"""Prompts and SFT targets exactly as the reference code builds them (see REFT_SPEC.md).

Targets do NOT include the EOS token's text: the trainer appends the tokenizer's EOS id, so that
no tokenizer's EOS string is baked into the data.
"""

from __future__ import annotations

from typing import Any

from reft_jax.data.records import NL, PROGRAM, DataError, Example, check_style

ANSWER_MARKER = "Therefore, the answer is:"


def build_prompt(question: str) -> str:
    """``Question:\\n<question>\\nAnswer reasoning:\\n`` (no BOS)."""
    return "Question:\n" + question.strip() + "\nAnswer reasoning:\n"


def program_header(question: str) -> str:
    """The first two lines of every P-CoT program; in RL the model writes only what follows."""
    return 'def solution():\n    """' + question + '"""\n'


def build_target(example: Example, style: str | None = None) -> str:
    """The SFT target without EOS: N-CoT ``cot + "\\nTherefore, the answer is: " + answer``, P-CoT
    the whole program."""
    style = style if style is not None else example.style
    check_style(style)
    if example.cot is None:
        raise DataError(f"{example.id}: has no annotated reasoning, so no {style} target")
    if example.style is not None and example.style != style:
        raise DataError(f"{example.id}: its reasoning is {example.style}, not {style}")
    if style == NL:
        return example.cot.strip() + "\n" + ANSWER_MARKER + " " + example.answer
    return example.cot


def build_rl_prompt(example: Example, style: str, chat_template: Any = None) -> str:
    """The prompt for sampling: for P-CoT the program header is appended, so the completion is the
    program body. ``chat_template``: any object with ``apply_chat_template`` (a Hugging Face
    tokenizer) to wrap the question prompt as a user turn for instruct models."""
    check_style(style)
    prompt = build_prompt(example.question)
    if chat_template is not None:
        prompt = wrap_chat(prompt, chat_template)
    return prompt + program_header(example.question) if style == PROGRAM else prompt


def build_sft_prompt(example: Example, chat_template: Any = None) -> str:
    """The SFT prompt (no header: the P-CoT target is the whole program)."""
    prompt = build_prompt(example.question)
    return wrap_chat(prompt, chat_template) if chat_template is not None else prompt


def wrap_chat(prompt: str, tokenizer: Any) -> str:
    """``prompt`` as the user turn of ``tokenizer``'s chat template, ending where the assistant
    starts to write."""
    if not hasattr(tokenizer, "apply_chat_template"):
        raise DataError(f"chat template requested but {type(tokenizer).__name__} has no apply_chat_template")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
