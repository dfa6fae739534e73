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

``check_chain`` accepts ANY valid path, not only the annotated one, so a reward or an evaluation can
tell a correct answer reached by valid reasoning from one reached by decorative steps.

Train and test never share a problem: the split is chosen by a hash of the problem's numbers (the
sorted counts and the price), not of its text, so a test question is never a train question with
the names changed or the people reordered.
"""

from __future__ import annotations

import dataclasses
import random
import re

from reft_jax.data.prompts import ANSWER_MARKER, build_target, program_header
from reft_jax.data.records import NL, NUMERIC, PROGRAM, STYLES, DataError, Example, check_style
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
_NL_STEP_RE = re.compile(r"^(\d+)\s*([+x*])\s*(\d+)\s*=\s*(\d+)$")
_NAME = r"[A-Za-z_]\w*"
_PY_STEP_RE = re.compile(rf"^    ({_NAME})\s*=\s*(\d+|{_NAME})\s*(?:([+*])\s*(\d+|{_NAME}))?\s*$")
_PY_RETURN_RE = re.compile(rf"^    return\s+({_NAME})\s*$")


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
class _Entry:
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
    pool = [_Entry(q, COUNT) for q in counts]
    k = _Entry(price, PRICE)
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
            out = _Entry(a.value * price, COIN, var)
            left, op, right = (a, "x", k) if rng.random() < 0.5 else (k, "x", a)
            x_left -= 1
            pool.remove(a)
        else:
            kind = COUNT if move == "add-counts" else COIN
            left, right = rng.sample([e for e in pool if e.kind == kind], 2)
            out = _Entry(left.value + right.value, kind, var)
            op = "+"
            pool.remove(left)
            pool.remove(right)
        pool.append(out)
        steps.append((left, op, right, out))
    return steps


def _nl_number(e: _Entry) -> str:
    return str(e.value) if e.kind == PRICE else f"{e.value:0{WIDTH}d}"


def nl_chain(steps) -> str:
    return " ; ".join(f"{_nl_number(a)} {op} {_nl_number(b)} = {_nl_number(r)}" for a, op, b, r in steps) + " ;"


def program(question: str, steps) -> str:
    def operand(e: _Entry) -> str:
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


# ----------------------------------------------------------------------------- checking


@dataclasses.dataclass(frozen=True)
class ChainCheck:
    """The verdict on one completion.

    Attributes:
      valid: every step legal and right, every quantity used once, and the chain ends with one coin
        amount equal to the final answer.
      answer: the final answer as the reward reads it (N-CoT: the number after the last
        ``Therefore, the answer is:``; P-CoT: the value of the returned variable), None if none.
      path: ``add-then-multiply``, ``mixed``, ``multiply-each-then-add``, or ``invalid``.
      reason: why the chain is invalid ("" when valid).
      steps: the valid chain's steps as sorted ``(op, (smaller, larger operand), result)`` tuples
        (op ``+`` or ``x``): a path's fingerprint, independent of step and operand order.
    """

    valid: bool
    answer: float | None
    path: str
    reason: str = ""
    steps: tuple = ()


@dataclasses.dataclass(frozen=True)
class _Step:
    left: int | str  # a number, or (P-CoT) a variable name
    op: str  # "+", "x", or "=" for a P-CoT alias ``name = operand`` (right repeats left)
    right: int | str
    result: int | None  # the value written after "=" (N-CoT); None: computed (P-CoT)
    var: str | None = None  # the variable assigned (P-CoT)


def _invalid(reason: str, answer: float | None = None) -> ChainCheck:
    return ChainCheck(False, answer, INVALID, reason)


def _parse_nl(completion: str):
    """(steps or an error string, the answer the reward reads)."""
    head, sep, _ = completion.rpartition(ANSWER_MARKER)
    if not sep:
        return "no 'Therefore, the answer is:'", None
    from reft_jax.rewards.answers import extract_nl  # rewards imports data; import late, no cycle

    answer = extract_nl(completion, NUMERIC)
    steps = []
    for piece in (p.strip() for p in head.split(";")):
        if not piece:
            continue
        m = _NL_STEP_RE.match(piece)
        if not m:
            return f"step {len(steps) + 1} is not 'number op number = number': {piece!r}", answer
        op = "+" if m[2] == "+" else "x"
        steps.append(_Step(int(m[1]), op, int(m[3]), int(m[4])))
    return steps, answer


def _parse_program(question: str, completion: str):
    """(steps, returned variable) or an error string. Parsed, never run: an operand is an integer
    or an earlier variable, each line ``name = operand op operand`` (or ``name = operand``)."""
    text = completion if completion.lstrip().startswith("def ") else program_header(question) + completion
    lines = []
    for line in text.strip("\n").split("\n"):  # the sandbox keeps the lines up to the first blank one
        if not line.strip():
            break
        lines.append(line)
    if len(lines) < 2 or lines[0].strip() != "def solution():" or not lines[1].strip().startswith('"""'):
        return "the program does not start with the solution() header"
    steps, returned = [], None
    for line in lines[2:]:
        if returned is not None:
            return f"a line after return: {line.strip()!r}"
        if m := _PY_RETURN_RE.match(line):
            returned = m[1]
        elif m := _PY_STEP_RE.match(line):
            operands = [m[2]] + ([m[4]] if m[3] else [])
            for tok in operands:
                if re.fullmatch(r"0\d+", tok):
                    return f"{tok} is not a Python integer (leading zero)"
            left, right = (int(t) if t.isdigit() else t for t in (operands * 2)[:2])
            op = {"+": "+", "*": "x", None: "="}[m[3]]
            steps.append(_Step(left, op, right, None, m[1]))
        else:
            return f"not an assignment or return: {line.strip()!r}"
    if returned is None:
        return "no return"
    return steps, returned


def _program_value(steps, returned: str) -> float | None:
    """What solution() would return (None where Python would raise NameError)."""
    env: dict[str, int] = {}
    for s in steps:
        vals = [env.get(o) if isinstance(o, str) else o for o in (s.left, s.right)]
        if None in vals:
            return None
        env[s.var] = vals[0] if s.op == "=" else vals[0] + vals[1] if s.op == "+" else vals[0] * vals[1]
    return float(env[returned]) if returned in env else None


class _Search:
    """Runs the steps over the pool. A number written by value may match several pool entries (a
    count sum equal to a coin amount), so each choice is tried; the reason kept for an invalid chain
    is the one from the branch that got furthest."""

    def __init__(self, counts, price: int, steps: list[_Step]):
        self.price, self.steps = price, steps
        self.start = tuple(_Entry(q, COUNT) for q in counts)
        self.known = set(counts) | {s.result for s in steps if s.result is not None}
        self.best = (-1, "")

    def fail(self, i: int, reason: str):
        if i > self.best[0]:
            self.best = (i, reason)
        return None

    def run(self, i: int = 0, pool: tuple = None, defined: frozenset = frozenset()):
        """The fingerprint of a valid run from step i with this pool, or None."""
        pool = self.start if pool is None else pool
        if i == len(self.steps):
            left = [e for e in pool if e.kind == COUNT]
            if left:
                return self.fail(i, f"item count {left[0].value} is never used")
            if len(pool) != 1:
                return self.fail(i, f"{len(pool)} coin amounts left, not one")
            return pool[0], ()
        s = self.steps[i]
        where = f"step {i + 1}"
        if s.op == "=":  # a P-CoT alias: the entry changes its name
            options = [j for j in self.entries(s.left, pool, defined, where, i) or () if j >= 0]
            if not options:
                return self.fail(i, f"{where}: {s.var} = {s.left} names no count or coin amount")
            j = options[0]
            pool = pool[:j] + pool[j + 1:] + (dataclasses.replace(pool[j], var=s.var),)
            return self.run(i + 1, pool, defined | {s.var})
        lefts = self.entries(s.left, pool, defined, where, i)
        rights = self.entries(s.right, pool, defined, where, i)
        if lefts is None or rights is None:
            return None
        tried = set()
        for a in lefts:
            for b in rights:
                ea, eb = (pool[a] if a >= 0 else None), (pool[b] if b >= 0 else None)
                key = (ea, eb)
                if a == b or key in tried:
                    continue
                tried.add(key)
                if s.op == "+":
                    if ea is None or eb is None:
                        self.fail(i, f"{where}: + does not take the price {self.price}")
                        continue
                    if ea.kind != eb.kind:
                        self.fail(i, f"{where}: + adds an item count to a coin amount")
                        continue
                    value, kind = ea.value + eb.value, ea.kind
                else:
                    kinds = sorted(e.kind if e else PRICE for e in (ea, eb))
                    if kinds != [COUNT, PRICE]:
                        self.fail(i, f"{where}: x takes the price {self.price} and an item count")
                        continue
                    count = ea if ea is not None else eb
                    value, kind = count.value * self.price, COIN
                if s.result is not None and s.result != value:
                    self.fail(i, f"{where}: {s.left} {s.op} {s.right} is {value}, not {s.result}")
                    continue
                rest = tuple(e for j, e in enumerate(pool) if j not in (a, b))
                if s.var is not None and any(e.var == s.var for e in rest):
                    self.fail(i, f"{where}: overwrites {s.var} before it is used")
                    continue
                found = self.run(i + 1, rest + (_Entry(value, kind, s.var),), defined | {s.var})
                if found is not None:
                    operands = tuple(sorted(e.value if e else self.price for e in (ea, eb)))
                    return found[0], ((s.op, operands, value),) + found[1]
        return self.fail(i, f"{where}: no legal reading of {s.left} {s.op} {s.right}")

    def entries(self, operand, pool, defined, where, i):
        """Indexes of the pool entries ``operand`` may stand for (-1: the price), or None (and a
        reason recorded) when it stands for none."""
        if isinstance(operand, str):
            found = [j for j, e in enumerate(pool) if e.var == operand]
            if found:
                return found
            why = "was already used" if operand in defined else "is not defined"
            return self.fail(i, f"{where}: {operand} {why}")
        found = [j for j, e in enumerate(pool) if e.value == operand]
        if operand == self.price:
            found.append(-1)
        if found:
            return found
        why = "was already used" if operand in self.known else "is neither in the question nor an earlier result"
        return self.fail(i, f"{where}: {operand} {why}")


def check_chain(question: str, completion: str, style: str) -> ChainCheck:
    """Whether ``completion`` solves ``question`` by ANY valid path. ``completion``: for N-CoT the
    text after the prompt (chain, then ``Therefore, the answer is: N``); for P-CoT the program body
    after the header or the whole program.

    Rules: a pool holds the question's item counts and each step's result, typed as item count or
    coin amount; ``+`` takes two entries of one type (and gives that type), ``x`` takes the price
    and an item count (and gives a coin amount); every step's arithmetic is right; every operand is
    an unused pool entry (consumed; only the price may be used again); at the end exactly one coin
    amount is left and it equals the final answer. A valid chain always has the right answer."""
    check_style(style)
    _, counts, price = parse_question(question)
    if style == NL:
        steps, answer = _parse_nl(completion)
        if isinstance(steps, str):
            return _invalid(steps, answer)
    else:
        parsed = _parse_program(question, completion)
        if isinstance(parsed, str):
            return _invalid(parsed)
        steps, returned = parsed
        answer = _program_value(steps, returned)
    search = _Search(counts, price, steps)
    found = search.run()
    if found is None:
        return _invalid(search.best[1], answer)
    last, fingerprint = found
    if style == NL and (answer is None or answer != last.value):
        return _invalid(f"the chain ends at {last.value} but the answer given is {answer}", answer)
    if style == PROGRAM and returned != last.var:
        return _invalid(f"returns {returned}, not {last.var} where the chain ends", answer)
    n_multiplications = sum(op == "x" for op, _, _ in fingerprint)
    return ChainCheck(True, answer, PATHS[n_multiplications], "", tuple(sorted(fingerprint)))


def _annotation(example: Example) -> ChainCheck:
    if example.cot is None or example.style is None:
        raise DataError(f"{example.id}: has no annotated reasoning")
    target = build_target(example)
    check = check_chain(example.question, target, example.style)
    if not check.valid:
        raise DataError(f"{example.id}: its annotated reasoning is invalid: {check.reason}")
    return check


def annotated_path(example: Example) -> str:
    """The kind of path ``example`` is annotated with."""
    return _annotation(example).path


def is_annotated_path(example: Example, completion: str, style: str | None = None) -> bool:
    """Whether ``completion`` is a valid chain with the same steps (as a multiset; order of steps
    and operands aside) as the example's annotation. For reporting the share of valid chains that
    took a path other than the annotated one."""
    check = check_chain(example.question, completion, style or example.style)
    return check.valid and check.steps == _annotation(example).steps
