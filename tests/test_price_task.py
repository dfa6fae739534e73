"""The price task (generator, chain checker) and the word-level corpus tokenizer."""

from __future__ import annotations

import collections

import pytest
from transformers import AutoTokenizer

from reft_jax.data.batching import encode_sft
from reft_jax.data.corpus_tokenizer import build_tokenizer, example_texts
from reft_jax.data.price_chains import annotated_path, check_chain, is_annotated_path
from reft_jax.data.price_task import (
    ADD_THEN_MULTIPLY, INVALID, MIXED, MULTIPLY_EACH, corpus_texts, generate_price, parse_question,
)
from reft_jax.data.prompts import build_rl_prompt, build_sft_prompt, build_target, program_header
from reft_jax.data.records import NL, PROGRAM, DataError, Example
from reft_jax.rewards.answers import extract_nl

Q = "ann 18 fay 18 cal 30 each 3 ?"
ANNOTATED = "030 + 018 = 048 ; 048 + 018 = 066 ; 066 x 3 = 198 ;"
ALTERNATIVE = "018 x 3 = 054 ; 018 x 3 = 054 ; 054 + 054 = 108 ; 030 x 3 = 090 ; 090 + 108 = 198 ;"
MARK = "\nTherefore, the answer is: "


def nl(chain: str, answer: int = 198) -> str:
    return chain + MARK + str(answer)


def body(*lines: str) -> str:
    return "\n".join("    " + line for line in lines)


def run_program(text: str) -> object:
    """Our own generated programs only (the reward runs model output in the sandbox)."""
    namespace: dict = {}
    exec(text, namespace)  # noqa: S102
    return namespace["solution"]()


@pytest.fixture(scope="module")
def data():
    return {style: generate_price(400, "train", style, seed=0) for style in (NL, PROGRAM)}


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(corpus_texts())


# ----------------------------------------------------------------------------- generator


def test_examples_look_as_documented(data):
    ex = data[NL][0]
    names, counts, price = parse_question(ex.question)
    assert ex.id == "price_train_0" and ex.dataset == "price" and ex.style == NL
    assert len(set(names)) == 3 and all(10 <= q <= 49 for q in counts) and 2 <= price <= 5
    assert ex.answer == str(price * sum(counts))
    assert ex.question == f"{names[0]} {counts[0]} {names[1]} {counts[1]} {names[2]} {counts[2]} each {price} ?"
    prog = data[PROGRAM][0]
    assert prog.question == ex.question and prog.cot.startswith(program_header(ex.question))
    assert prog.cot.endswith("\n    return result")


@pytest.mark.parametrize("style", [NL, PROGRAM])
def test_every_annotated_path_passes_the_checker(data, style):
    kinds = collections.Counter()
    for ex in data[style]:
        check = check_chain(ex.question, build_target(ex), style)
        assert check.valid, (ex, check)
        assert check.answer == float(ex.answer)
        assert is_annotated_path(ex, build_target(ex))
        kinds[annotated_path(ex)] += 1
    assert set(kinds) == {ADD_THEN_MULTIPLY, MIXED, MULTIPLY_EACH}
    assert min(kinds.values()) > len(data[style]) / 5  # drawn about evenly


def test_programs_return_the_answer_when_run(data):
    for ex in data[PROGRAM][:50]:
        assert run_program(ex.cot) == int(ex.answer)


def test_both_styles_annotate_the_same_path(data):
    for a, b in zip(data[NL], data[PROGRAM]):
        assert a.question == b.question
        assert check_chain(a.question, build_target(a), NL).steps == check_chain(b.question, b.cot, PROGRAM).steps


def test_train_and_test_never_share_a_problem():
    train = generate_price(3000, "train", NL, seed=1)
    test = generate_price(1000, "test", NL, seed=1)

    def problem(ex):
        _, counts, price = parse_question(ex.question)
        return tuple(sorted(counts)), price

    assert not {ex.question for ex in train} & {ex.question for ex in test}
    assert not {problem(ex) for ex in train} & {problem(ex) for ex in test}  # names aside, too
    assert len({problem(ex) for ex in test}) == len(test)


def test_deterministic_per_seed():
    assert generate_price(50, "train", NL, seed=3) == generate_price(50, "train", NL, seed=3)
    assert generate_price(50, "train", NL, seed=3) != generate_price(50, "train", NL, seed=4)


def test_bad_settings_are_refused():
    with pytest.raises(DataError):
        generate_price(5, "dev")
    with pytest.raises(DataError):
        generate_price(5, style="python")
    with pytest.raises(DataError):
        generate_price(5, count_range=(10, 99), price_range=(2, 9))  # 3 digits would not hold
    with pytest.raises(DataError):
        check_chain("how many apples?", nl(ANNOTATED), NL)


# ----------------------------------------------------------------------------- checker


def test_hand_written_paths_pass():
    a = check_chain(Q, nl(ANNOTATED), NL)
    b = check_chain(Q, nl(ALTERNATIVE), NL)
    c = check_chain(Q, nl("3 x 018 = 054 ; 030 + 018 = 048 ; 3 x 048 = 144 ; 144 + 054 = 198 ;"), NL)
    assert (a.valid, a.path, a.answer) == (True, ADD_THEN_MULTIPLY, 198.0)
    assert (b.valid, b.path, b.answer) == (True, MULTIPLY_EACH, 198.0)
    assert (c.valid, c.path, c.answer) == (True, MIXED, 198.0)
    assert check_chain(Q, nl(ANNOTATED) + "\n", NL).valid  # a trailing newline is harmless
    p = check_chain(Q, body("a = 18 * 3", "b = 3 * 18", "c = a + b", "d = 30 * 3", "result = d + c",
                            "return result"), PROGRAM)
    assert (p.valid, p.path, p.answer, p.steps) == (True, MULTIPLY_EACH, 198.0, b.steps)
    whole = program_header(Q) + body("total = 30 + 18", "total = total + 18", "result = total * 3", "return result")
    assert check_chain(Q, whole, PROGRAM).valid  # the whole program, a variable reused once consumed


def test_annotated_versus_other_path():
    ex = Example("price_train_0", Q, "198", cot=ANNOTATED, style=NL, dataset="price")
    assert annotated_path(ex) == ADD_THEN_MULTIPLY
    assert is_annotated_path(ex, nl("018 + 030 = 048 ; 018 + 048 = 066 ; 3 x 066 = 198 ;"))  # operands swapped
    assert not is_annotated_path(ex, nl("018 + 018 = 036 ; 036 + 030 = 066 ; 066 x 3 = 198 ;"))
    assert not is_annotated_path(ex, nl(ALTERNATIVE))
    assert not is_annotated_path(ex, nl("030 + 018 = 048 ; 048 + 018 = 066 ; 066 x 3 = 198 ;", 199))
    assert is_annotated_path(ex, body("a = 30 + 18", "b = a + 18", "result = b * 3", "return result"), PROGRAM)


@pytest.mark.parametrize("chain, answer, reason", [
    ("030 + 018 = 049 ; 049 + 018 = 067 ; 067 x 3 = 201 ;", 201, "is 48, not 49"),  # one wrong step
    ("030 + 017 = 047 ; 047 + 018 = 065 ; 065 x 3 = 195 ;", 195, "neither in the question"),  # invented
    ("030 + 018 = 048 ; 048 + 030 = 078 ; 078 x 3 = 234 ;", 234, "already used"),  # 30 used twice
    ("030 x 3 = 090 ; 090 + 018 = 108 ; 108 + 018 = 126 ;", 126, "count to a coin"),  # count + coin
    ("030 + 018 = 050 ; 050 + 018 = 070 ; 066 x 3 = 198 ;", 198, "is 48, not 50"),  # right answer, wrong steps
    ("030 + 018 = 048 ; 048 x 3 = 144 ;", 144, "count 18 is never used"),  # a quantity left out
    ("018 x 3 = 054 ; 018 x 3 = 054 ; 030 x 3 = 090 ; 054 + 090 = 144 ;", 144, "coin amounts left"),
    ("030 + 3 = 033 ; 033 + 018 = 051 ; 051 + 018 = 069 ;", 69, "does not take the price"),
    ("030 x 018 = 540 ;", 540, "x takes the price"),
    (ANNOTATED, 199, "answer given is 199"),
    ("030 + 018 = 048 ; 048 + 018 equals 066 ;", 198, "is not 'number op number"),
])
def test_invalid_nl_chains_fail_with_a_reason(chain, answer, reason):
    check = check_chain(Q, nl(chain, answer), NL)
    assert not check.valid and check.path == INVALID
    assert reason in check.reason, check.reason
    assert check.answer == float(answer)  # what the reward would read, all the same


def test_nl_without_the_marker_fails():
    check = check_chain(Q, ANNOTATED, NL)
    assert not check.valid and check.answer is None and "Therefore" in check.reason


@pytest.mark.parametrize("lines, reason", [
    (("a = 30 + 18", "b = a + 18", "c = a + 18", "result = c * 3", "return result"), "a was already used"),
    (("a = 30 * 3", "b = a + 18", "c = b + 18", "result = c", "return result"), "count to a coin"),
    (("a = 30 + 17", "b = a + 18", "result = b * 3", "return result"), "neither in the question"),
    (("a = 30 + 18", "b = x + 18", "result = b * 3", "return result"), "x is not defined"),
    (("a = 030 + 018", "b = a + 18", "result = b * 3", "return result"), "leading zero"),
    (("a = 30 + 18", "b = a + 18", "result = b * 3", "return result", "print(result)"), "after return"),
    (("a = 30 + 18", "b = a + 18", "result = b * 3"), "no return"),
    (("a = 30 + 18", "b = a + 18", "result = b * 3", "return b"), "returns b, not result"),
    (("a = 30 + 18", "a = 18 * 3", "result = a * 3", "return result"), "overwrites a"),
])
def test_invalid_programs_fail_with_a_reason(lines, reason):
    check = check_chain(Q, body(*lines), PROGRAM)
    assert not check.valid and check.path == INVALID
    assert reason in check.reason, check.reason


def test_program_answer_is_what_solution_returns():
    wrong = body("a = 30 + 18", "b = a + 18", "result = b * 4", "return result")
    check = check_chain(Q, wrong, PROGRAM)
    assert not check.valid and check.answer == 264.0 == run_program(program_header(Q) + wrong)
    cut = body("a = 30 + 18", "b = a + 18", "result = b * 3", "return result") + "\n\nrubbish"
    assert check_chain(Q, cut, PROGRAM).valid  # the sandbox, too, stops at the first blank line


# ----------------------------------------------------------------------------- tokenizer


def test_tokenizer_vocabulary_is_small_with_one_token_per_digit(tokenizer):
    vocab = tokenizer.get_vocab()
    assert len(tokenizer) < 100
    assert [vocab[t] for t in ("<pad>", "<s>", "</s>", "<unk>")] == [0, 1, 2, 3]
    assert tokenizer.eos_token_id == 2 and tokenizer.pad_token_id == 0
    assert all(str(d) in vocab for d in range(10))
    ids = tokenizer("030 + 018", add_special_tokens=False)["input_ids"]
    # one space rides with the piece after it; digits stay one token each
    assert tokenizer.convert_ids_to_tokens(ids) == ["0", "3", "0", " +", " 0", "1", "8"]
    assert tokenizer("zebra", add_special_tokens=False)["input_ids"] == [3]


@pytest.mark.parametrize("style", [NL, PROGRAM])
def test_tokenizer_round_trips_prompts_and_targets(tokenizer, style):
    for ex in generate_price(200, "test", style, seed=5):  # unseen questions
        for text in (build_sft_prompt(ex), build_rl_prompt(ex, style), build_target(ex)):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            assert 3 not in ids and tokenizer.decode(ids, skip_special_tokens=True) == text
        enc = encode_sft(ex, tokenizer, style)
        completion = tokenizer.decode(enc.ids[enc.target_start:], skip_special_tokens=True)  # EOS dropped
        check = check_chain(ex.question, completion, style)
        assert check.valid and check.answer == float(ex.answer)
        if style == NL:
            assert extract_nl(completion, "numeric") == float(ex.answer)
        else:
            full = tokenizer.decode(enc.ids, skip_special_tokens=True)
            assert run_program(full.split("Answer reasoning:\n", 1)[1]) == int(ex.answer)


def test_tokenizer_saves_and_reloads(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = build_rl_prompt(generate_price(1, "train", PROGRAM, seed=0)[0], PROGRAM)
    assert again.get_vocab() == tokenizer.get_vocab() and again.eos_token_id == tokenizer.eos_token_id
    ids = again(text, add_special_tokens=False)["input_ids"]
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert again.decode(ids + [again.eos_token_id], skip_special_tokens=True) == text


def test_vocabulary_does_not_depend_on_corpus_order():
    texts = example_texts(generate_price(50, "train", NL, seed=0))
    assert build_tokenizer(texts).get_vocab() == build_tokenizer(texts[::-1]).get_vocab()
