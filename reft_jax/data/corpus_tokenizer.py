"""A word-level Hugging Face tokenizer built from a corpus, for tiny from-scratch models on CPU.

Why word-level with one token per digit: a 100k-parameter model learns column arithmetic when every
digit is its own token and every word one token (QUICKSTART_PROBES.md: vocabulary ~40). Why
whitespace is kept as tokens (a newline, a run of spaces): decoding must give back the exact text,
because the answer extractor reads ``Therefore, the answer is: 198``, the chain checker reads
``030 + 018 = 048 ;``, and P-CoT programs need their newlines and 4-space indentation to run. The
decoder therefore just concatenates the tokens; no clean-up of spaces.

Pieces (one regex, each match one token): a newline; a single digit, a run of letters (or
underscores) or any other single character, each with the one space before it if there is one
(as GPT-2's " word" tokens: a chain like ``030 + 018 = 048 ;`` is 12 tokens instead of 17, and
sequences a third shorter train and sample a third faster); a run of spaces or tabs left over
(indentation). Text with a piece outside the corpus encodes to ``<unk>``.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from reft_jax.data.prompts import build_rl_prompt, build_sft_prompt, build_target
from reft_jax.data.records import Example

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3
PIECES = r"\n| ?\d| ?[^\W\d]+| ?[^\w\s]|[ \t]+|\s"


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Split(Regex(PIECES), behavior="isolated")


def build_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A tokenizer whose vocabulary is the special tokens (``<pad>`` 0, ``<s>`` 1, ``</s>`` 2 = EOS,
    ``<unk>`` 3) then every piece of ``texts``, sorted (so ids depend on the corpus' contents, not
    its order). ``save_pretrained`` / ``AutoTokenizer.from_pretrained`` work offline. Encoding adds
    no special tokens; the trainer appends EOS itself."""
    pre = _pre_tokenizer()
    pieces = {piece for text in texts for piece, _ in pre.pre_tokenize_str(text)}
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for piece in sorted(pieces - set(SPECIAL_TOKENS)):
        vocab[piece] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre
    core.decoder = decoders.Fuse()  # concatenate: the pieces already hold all whitespace
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        clean_up_tokenization_spaces=False,  # else " ?" would decode as "?" and the text change
    )


def example_texts(examples: Sequence[Example]) -> list[str]:
    """Every text a run feeds the tokenizer for these examples: the SFT prompt, the RL prompt (with
    the P-CoT header) and the target, each in the example's own style."""
    texts = []
    for ex in examples:
        texts.append(build_sft_prompt(ex))
        if ex.style is not None:
            texts += [build_rl_prompt(ex, ex.style), build_target(ex)]
    return texts
