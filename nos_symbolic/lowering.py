"""SymPy expression -> straight-line code that any backend runs.

A rule lowers to `Code`: one `Op` per distinct subexpression (so shared subtrees run once), each
reading earlier registers. Sums and products of n terms become n - 1 binary ops, left to right, as
reduce would; x^2 and x^3 become products; x^-1, x^(1/2) and x^(-1/2) get ops of their own. Every other
SymPy node becomes an "entry" op run by the registry entry that introduced it.

Two backends run the same Code: torch (compile.py, the optimizer) and numpy (numeric.py: probes,
fingerprints and the parser's constant folding). Sharing the lowering keeps their operations, and the
order of their roundings, the same.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import sympy

from nos_symbolic import functions as F
from nos_symbolic.errors import NosError
from nos_symbolic.registry import DELTA, NODE_ENTRIES, Primitive

OPERAND_NAMES = frozenset({"g", "m", "v", "y", "w"})  # the state tensors an update may read


class CompileError(NosError):
    """A SymPy node with no registry entry to run it."""


class Op(NamedTuple):
    """One instruction: `kind` applied to registers `args`.

    kind     value                            params
    const    the number (float)               ()
    add, mul                                  ()           x + y, x * y
    pow                                       ()           x ^ y, y a register
    powc     the exponent (float)             ()           x ^ c
    recip, sqrt, rsqrt                        ()           1 / x, sqrt(x), 1 / sqrt(x)
    entry    the registry entry (Primitive)   its numeric parameters (int or float)
    """

    kind: str
    args: tuple[int, ...] = ()
    value: Any = None
    params: tuple = ()


@dataclass(frozen=True)
class Code:
    """A rule as straight-line code; `operands` names the state tensors it reads."""

    ops: tuple[Op, ...]
    operands: frozenset[str]


# Constant exponents with an op of their own (by SymPy number: 2 and 3 are products).
_SPECIAL_POWERS: dict[sympy.Expr, str] = {
    sympy.Integer(-1): "recip",
    sympy.Rational(1, 2): "sqrt",
    sympy.Rational(-1, 2): "rsqrt",
}


def _number(e: sympy.Expr) -> float:
    if e is sympy.zoo:
        return math.inf
    return float(e)


def _param(e: sympy.Expr) -> int | float:
    return int(e) if e.is_Integer else float(e)


def lower(expr: sympy.Expr) -> Code:
    """The straight-line code of a SymPy rule (see the module docstring); CompileError for a node
    no registry entry runs."""
    index: dict[sympy.Basic, int] = {}
    ops: list[Op] = []
    operands: set[str] = set()

    def emit(op: Op) -> int:
        ops.append(op)
        return len(ops) - 1

    def chain(kind: str, regs: list[int]) -> int:
        acc = regs[0]
        for reg in regs[1:]:
            acc = emit(Op(kind, (acc, reg)))
        return acc

    def visit(e: sympy.Basic) -> int:
        if e in index:
            return index[e]
        if e is F.delta:
            reg = emit(Op("const", value=DELTA))
        elif e is sympy.I:  # a complex intermediate: real float arithmetic gives NaN there
            reg = emit(Op("const", value=math.nan))
        elif e.is_Number or isinstance(e, sympy.NumberSymbol) or e is sympy.zoo:
            reg = emit(Op("const", value=_number(e)))
        elif isinstance(e, sympy.Add):
            reg = chain("add", [visit(a) for a in e.args])
        elif isinstance(e, sympy.Mul):
            reg = chain("mul", [visit(a) for a in e.args])
        elif isinstance(e, sympy.Pow):
            reg = visit_pow(*e.args)
        else:
            reg = visit_entry(e)
        index[e] = reg
        return reg

    def visit_pow(base: sympy.Expr, exponent: sympy.Expr) -> int:
        if exponent in (2, 3):  # x * x, x * x * x
            return chain("mul", [visit(base)] * int(exponent))
        if exponent.is_Number:
            special = _SPECIAL_POWERS.get(exponent)
            if special is not None:
                return emit(Op(special, (visit(base),)))
            return emit(Op("powc", (visit(base),), float(exponent)))
        return emit(Op("pow", (visit(base), visit(exponent))))

    def visit_entry(e: sympy.Basic) -> int:
        entry: Primitive | None = NODE_ENTRIES.get(e if isinstance(e, sympy.Symbol) else type(e))
        if entry is None or entry.torch is None or entry.numpy is None:
            raise CompileError(
                f"no mapping for SymPy node {type(e).__name__} ({e}); add a Primitive with "
                f"node={type(e).__name__} and torch and numpy implementations to nos_symbolic/registry.py")
        if entry.kind == "operand" and entry.name in OPERAND_NAMES:
            operands.add(entry.name)
        args = tuple(visit(a) for a in e.args[: entry.arity])
        params = tuple(_param(p) for p in e.args[entry.arity:])
        return emit(Op("entry", args, entry, params))

    visit(expr)
    return Code(tuple(ops), frozenset(operands))
