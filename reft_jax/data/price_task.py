"""The "price" task: a CPU-quickstart task on which RL beats SFT by reasoning, not by a shortcut.

Three people have q1, q2, q3 items (10-49) and every item costs k coins (2-5); the answer is
k * (q1 + q2 + q3). Why this task (see QUICKSTART_PROBES.md, experiment 3): a plain total can be read
off the prompt's digits by a tiny model, the multiplication after the sum cannot; and the task has
several valid reasoning paths, so RL has correct samples other than the gold chain to reinforce:

- add-then-multiply (3 steps), mixed (4 steps), multiply-each-then-add (5 steps).

Every training question is annotated with ONE path drawn at random (kind, order of the quantities
and operand order), so the data set as a whole shows all of them.

Formats (question ``ann 18 fay 18 cal 30 each 3 ?``, answer 198):

- N-CoT chain (``Example.cot``; the prompt builder appends ``\\nTherefore, the answer is: 198``)::

      030 + 018 = 048 ; 048 + 018 = 066 ; 066 x 3 = 198 ;

  Counts and coin amounts are zero-padded to 3 digits (most significant first, so a model writes
  every number with the same number of digit tokens); the price k is written as its single digit.
- P-CoT program (the whole program; ``build_rl_prompt`` gives the model the first two lines)::

      def solution():
          \"\"\"ann 18 fay 18 cal 30 each 3 ?\"\"\"
          a = 30 + 18
          b = a + 18
          result = b * 3
          return result

  (Python forbids literals like ``030``, so programs write numbers unpadded.)

``price_chains.check_chain`` accepts ANY valid path, not only the annotated one, so a reward or an evaluation can
tell a correct answer reached by valid reasoning from one reached by decorative steps.

Train and test never share a problem: the split is chosen by a hash of the problem's numbers (the
sorted counts and the price), not of its text, so a test question is never a train question with
the names changed or the people reordered.
"""

from __future__ import annotations

import dataclasses
import random
import re

from reft_jax.data.prompts import program_header
from reft_jax.data.records import NL, NUMERIC, STYLES, DataError, Example, check_style
from reft_jax.data.synthetic import split_of

NAMES = ("ann", "bob", "cal", "dan", "eve", "fay", "gus", "hal")
COUNT_RANGE = (10, 49)
PRICE_RANGE = (2, 5)
WIDTH = 3  # digits of every count and coin amount in an N-CoT chain

ADD_THEN_MULTIPLY = "add-then-multiply"
MIXED = "mixed"
MULTIPLY_EACH = "multiply-each-then-add"
INVALID = "invalid"
PATHS = {1: ADD_THEN_MULTIPLY, 2: MIXED, 3: MULTIPLY_EACH}  # by the number of multiplications

COUNT, COIN, PRICE = "count", "coin", "price"
_QUESTION_RE = re.compile(r"^\s*([a-z]+) (\d+) ([a-z]+) (\d+) ([a-z]+) (\d+) each (\d+) \?\s*$")


# ----------------------------------------------------------------------------- questions


def parse_question(question: str) -> tuple[tuple[str, str, str], tuple[int, int, int], int]:
    """(names, counts, price) of a price question; DataError if it is not one (a caller's bug)."""
    m = _QUESTION_RE.match(question)
    if not m:
        raise DataError(f"not a price question: {question!r}")
    g = m.groups()
    return (g[0], g[2], g[4]), (int(g[1]), int(g[3]), int(g[5])), int(g[6])


def format_question(names, counts, price: int) -> str:
    return " ".join(f"{name} {q}" for name, q in zip(names, counts)) + f" each {price} ?"


# ----------------------------------------------------------------------------- generation


@dataclasses.dataclass(frozen=True)
class PoolEntry:
    """A number in the pool: its value, its type, and (P-CoT) the variable holding it (None: a
    quantity written in the question)."""

    value: int
    kind: str
    var: str | None = None


def _random_path(rng: random.Random, counts, price: int):
    """One valid path with a random kind, order and operand order: a list of (left, op, right,
    result) entries. Moves are drawn among those that can still finish with the chosen number of
    multiplications m (1, 2 or 3): counts are merged into exactly m groups, each group is
    multiplied once, and the coin amounts are added up, in any interleaving."""
    x_left = rng.choice((1, 2, 3))
    pool = [PoolEntry(q, COUNT) for q in counts]
    k = PoolEntry(price, PRICE)
    steps = []
    total = x_left + 2
    while len(steps) < total:
        n_counts = sum(e.kind == COUNT for e in pool)
        moves = []
        if n_counts >= 2 and n_counts - 1 >= x_left:
            moves.append("add-counts")
        if n_counts >= 1 and x_left >= 1 and (n_counts == 1 or x_left >= 2):
            moves.append("multiply")
        if sum(e.kind == COIN for e in pool) >= 2:
            moves.append("add-coins")
        move = rng.choice(moves)
        var = "result" if len(steps) == total - 1 else "abcd"[len(steps)]
        if move == "multiply":
            a = rng.choice([e for e in pool if e.kind == COUNT])
            out = PoolEntry(a.value * price, COIN, var)
            left, op, right = (a, "x", k) if rng.random() < 0.5 else (k, "x", a)
            x_left -= 1
            pool.remove(a)
        else:
            kind = COUNT if move == "add-counts" else COIN
            left, right = rng.sample([e for e in pool if e.kind == kind], 2)
            out = PoolEntry(left.value + right.value, kind, var)
            op = "+"
            pool.remove(left)
            pool.remove(right)
        pool.append(out)
        steps.append((left, op, right, out))
    return steps


def _nl_number(e: PoolEntry) -> str:
    return str(e.value) if e.kind == PRICE else f"{e.value:0{WIDTH}d}"


def nl_chain(steps) -> str:
    return " ; ".join(f"{_nl_number(a)} {op} {_nl_number(b)} = {_nl_number(r)}" for a, op, b, r in steps) + " ;"


def program(question: str, steps) -> str:
    def operand(e: PoolEntry) -> str:
        return e.var if e.var is not None else str(e.value)

    body = [f"    {r.var} = {operand(a)} {'*' if op == 'x' else '+'} {operand(b)}" for a, op, b, r in steps]
    return program_header(question) + "\n".join(body + ["    return result"])


def generate_price(
    n: int = 1000,
    split: str = "train",
    style: str = NL,
    seed: int = 0,
    count_range: tuple[int, int] = COUNT_RANGE,
    price_range: tuple[int, int] = PRICE_RANGE,
) -> list[Example]:
    """``n`` distinct price problems of ``split``, each annotated with one random valid path in
    ``style``. Deterministic for a seed; the same seed gives the same questions and paths in both
    styles. No two questions of a split share their numbers (names apart)."""
    check_style(style)
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    (lo, hi), (klo, khi) = count_range, price_range
    if not (1 <= lo <= hi and 1 <= klo <= khi and 3 * hi * khi < 10**WIDTH):
        raise DataError(f"bad price settings: count_range={count_range}, price_range={price_range}")
    rng = random.Random(f"reft-price-{seed}")
    out, seen, tries = [], set(), 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise DataError(f"only {len(out)} distinct {split} price problems for {count_range}, {price_range}")
        names = rng.sample(NAMES, 3)
        counts = [rng.randint(lo, hi) for _ in range(3)]
        price = rng.randint(klo, khi)
        steps = _random_path(rng, counts, price)  # drawn for every try: both styles stay in step
        key = f"price {sorted(counts)} each {price}"
        if key in seen or split_of(key) != split:
            continue
        seen.add(key)
        question = format_question(names, counts, price)
        out.append(
            Example(
                id=f"price_{split}_{len(out)}",
                question=question,
                answer=str(price * sum(counts)),
                answer_type=NUMERIC,
                cot=nl_chain(steps) if style == NL else program(question, steps),
                style=style,
                dataset="price",
            )
        )
    return out


def corpus_texts(n: int = 200, seed: int = 0) -> list[str]:
    """Texts that hold every word the price task uses, for ``corpus_tokenizer.build_tokenizer``:
    prompts and targets of both styles, and every name and digit spelled out (so the vocabulary
    does not depend on which names a small sample happened to draw)."""
    from reft_jax.data.corpus_tokenizer import example_texts  # a sibling module; no cycle at import

    # every name and digit both after a space and at the start of a line (the tokenizer keeps
    # a leading space with its piece, so " ann" and "ann" are two tokens)
    texts = [" ".join(NAMES) + " " + " ".join("0123456789"), "\n".join(NAMES + tuple("0123456789"))]
    for style in STYLES:
        texts += example_texts(generate_price(n, "train", style, seed))
    return texts
