"""P-CoT programs for GSM8K, built from its own calculator annotations.

The paper's GSM8K program annotations (GPT-3.5 written) are not available here. Each ``<<expr=value>>``
step of a human solution becomes one assignment; a number in a later step that equals an earlier
step's value becomes a reference to that step's variable; ``solution()`` returns the last step (or the
last one equal to the gold answer, when the final step is not the answer). Every program is checked by
evaluating its arithmetic with a small AST evaluator (no exec): only programs that reproduce the gold
answer within 1e-2 are kept, and the loader reports how many were dropped.
"""

from __future__ import annotations

import ast
import math
import operator
import pathlib
import re
import warnings

from reft_jax.data.gsm8k import annotations, load_gsm8k_jsonl, split_solution
from reft_jax.data.jsonio import field, read_jsonl
from reft_jax.data.prompts import program_header
from reft_jax.data.records import PROGRAM, Example

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_TOLERANCE = 1e-2
_NUM = r"\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
_OPERAND = rf"\(*\s*{_NUM}\s*\)*"
# An equation written in the text without an annotation, e.g. "so 48-46 = 2 more boys".
_INLINE_RE = re.compile(rf"({_OPERAND}(?:\s*[-+*/x×÷]\s*{_OPERAND})+)\s*=\s*({_NUM})")


class _Unsupported(Exception):
    """A step that is not plain arithmetic, or that does not evaluate."""


def _clean(expr: str) -> str:
    expr = re.sub(r"(\d),(?=\d{3}\b)", r"\1", expr)
    expr = re.sub(r"(\d+(?:\.\d+)?)\s*%", r"(\1/100)", expr)
    for a, b in (("$", ""), ("×", "*"), ("÷", "/"), ("^", "**"), ("x", "*"), ("X", "*")):
        expr = expr.replace(a, b)
    return expr.strip()


def _evaluate(node: ast.AST, env: dict[str, float]) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, env))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _evaluate(node.left, env), _evaluate(node.right, env)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
            raise _Unsupported("power too large")
        try:
            value = _BINOPS[type(node.op)](left, right)
        except (ZeroDivisionError, OverflowError, ValueError) as e:
            raise _Unsupported(str(e)) from None
        if isinstance(value, complex) or not math.isfinite(value):
            raise _Unsupported("not a real number")
        return value
    raise _Unsupported(ast.dump(node))


class _Linker(ast.NodeTransformer):
    """Replaces a number equal to an earlier step's written value by that step's variable."""

    def __init__(self, written: list[tuple[str, float]]):
        self.written = written

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        for name, value in reversed(self.written):
            if node.value == value:
                return ast.Name(id=name, ctx=ast.Load())
        return node


def steps_of(answer: str) -> list[str]:
    """``expr=value`` steps in order: a line's annotations, or the equations written in a line
    that has none (humans often skip the annotation on the last step)."""
    steps = []
    for line in answer.rpartition("####")[0].splitlines():
        found = annotations(line)
        steps += found if found else [f"{e}={v}" for e, v in _INLINE_RE.findall(line)]
    return steps


def gsm8k_program(question: str, answer: str, gold: float) -> str | None:
    """The program for one GSM8K solution, or None when its annotations do not reproduce ``gold``."""
    lines: list[str] = []
    written: list[tuple[str, float]] = []  # (variable, value as written after '=')
    env: dict[str, float] = {}
    for step in steps_of(answer):
        lhs, sep, rhs = step.rpartition("=")
        try:
            if not sep:
                raise _Unsupported("no '='")
            tree = ast.parse(_clean(lhs), mode="eval")
            tree = ast.fix_missing_locations(_Linker(written).visit(tree))
            value = _evaluate(tree.body, env)
        except (SyntaxError, _Unsupported, RecursionError):
            continue
        name = f"step{len(written) + 1}"
        try:
            shown = float(_clean(rhs))
        except ValueError:
            shown = value
        env[name] = value
        written.append((name, shown))
        lines.append(f"    {name} = {ast.unparse(tree.body)}")
    if not written:
        return None
    result = written[-1][0]
    if abs(env[result] - gold) > _TOLERANCE:
        matches = [name for name, _ in written if abs(env[name] - gold) <= _TOLERANCE]
        if not matches:
            return None
        result = matches[-1]
    program = program_header(question) + "\n".join(lines) + f"\n    result = {result}\n    return result"
    try:
        ast.parse(program)
    except SyntaxError:  # e.g. a question that ends in a quote breaks the docstring
        return None
    return program


def load_gsm8k_programs(path: str | pathlib.Path, split: str | None = None) -> tuple[list[Example], int]:
    """P-CoT records for a GSM8K JSONL file, and how many questions had no verified program
    (a warning says so). Ids match :func:`load_gsm8k_jsonl`'s."""
    path = pathlib.Path(path)
    split = split if split is not None else path.stem
    nl = load_gsm8k_jsonl(path, split)
    kept = []
    for ex, (lineno, obj) in zip(nl, read_jsonl(path)):
        answer = field(obj, "answer", f"{path}:{lineno}")
        split_solution(answer, f"{path}:{lineno}")
        program = gsm8k_program(ex.question, answer, float(ex.answer))
        if program is not None:
            kept.append(Example(ex.id, ex.question, ex.answer, ex.answer_type, program, PROGRAM, ex.dataset))
    dropped = len(nl) - len(kept)
    if dropped:
        warnings.warn(
            f"{path}: {dropped} of {len(nl)} GSM8K questions have no program that reproduces the "
            f"gold answer from their annotations; kept {len(kept)}",
            stacklevel=2,
        )
    return kept, dropped
