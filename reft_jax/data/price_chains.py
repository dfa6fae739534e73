"""Checking a price-task chain step by step: any valid reasoning path, not only the annotated one.

A pool holds the question's item counts and price and every result so far, each typed as an item
count or a coin amount; ``+`` takes two entries of one type, ``x`` the price and an item count;
each quantity is used once, every step's arithmetic is right, and the chain ends with one coin
amount equal to the answer. So a reward or an evaluation can tell a correct answer reached by
valid reasoning from one reached by decorative steps (see ``price_task`` for the task itself).
"""

from __future__ import annotations

import dataclasses
import re

from reft_jax.data.price_task import COIN, COUNT, INVALID, PATHS, PRICE, PoolEntry, parse_question
from reft_jax.data.prompts import ANSWER_MARKER, build_target, program_header
from reft_jax.data.records import NL, NUMERIC, PROGRAM, DataError, Example, check_style

_NL_STEP_RE = re.compile(r"^(\d+)\s*([+x*])\s*(\d+)\s*=\s*(\d+)$")
_NAME = r"[A-Za-z_]\w*"
_PY_STEP_RE = re.compile(rf"^    ({_NAME})\s*=\s*(\d+|{_NAME})\s*(?:([+*])\s*(\d+|{_NAME}))?\s*$")
_PY_RETURN_RE = re.compile(rf"^    return\s+({_NAME})\s*$")


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
        self.start = tuple(PoolEntry(q, COUNT) for q in counts)
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
                found = self.run(i + 1, rest + (PoolEntry(value, kind, s.var),), defined | {s.var})
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
