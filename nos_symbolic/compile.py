"""SymPy expression -> straight-line torch code.

A rule compiles to a `Program`: one instruction per distinct subexpression (so shared subtrees run
once), each reading earlier registers. Arithmetic nodes (+, *, ^, numbers) are handled here; every other
SymPy node runs through the registry entry that introduced it. Values are tensors of any device and
dtype, or Python floats for parts that depend only on the step (schedules), which stay scalars.

The environment an update sees (`Env`) supplies the operand tensors, the step t and total steps T, and
standard random draws; the optimizer and the fingerprint probes are two environments.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import lru_cache, reduce
from typing import Any, Callable, Protocol

import sympy
import torch

from nos_symbolic import functions as F
from nos_symbolic.registry import DELTA, NODE_ENTRIES

Value = Any  # torch.Tensor | float


class Env(Protocol):
    """What a compiled rule reads at one step."""

    t: Any  # step count (1-based, as torch.optim counts), float or tensor
    T: Any  # total steps of the run, for the decays

    def tensor(self, name: str) -> torch.Tensor:
        """Operand tensor: g, m, v, y or w."""

    def randn(self, key: str) -> torch.Tensor:
        """Standard normal draws shaped like g; one draw per key per step."""

    def rand(self, key: str) -> torch.Tensor:
        """Uniform [0, 1) draws shaped like g; one draw per key per step."""


class CompileError(ValueError):
    """A SymPy node with no torch mapping."""


Instruction = tuple[Callable[..., Value], tuple[int, ...], tuple[Any, ...]]


@dataclass(frozen=True)
class Program:
    """update(env) for one rule. `operands` names the tensors it reads (its state needs)."""

    instructions: tuple[Instruction, ...]
    operands: frozenset[str]

    def __call__(self, env: Env) -> torch.Tensor:
        regs: list[Value] = []
        for fn, args, params in self.instructions:
            regs.append(fn(env, *(regs[i] for i in args), *params))
        out = regs[-1]
        like = env.tensor("g")
        if not isinstance(out, torch.Tensor):
            return torch.full_like(like, float(out))
        return out if out.shape == like.shape else out.expand_as(like).clone()


def _const(value: float) -> Callable[..., float]:
    return lambda env: value


def _add(env: Env, *xs: Value) -> Value:
    return reduce(operator.add, xs)


def _mul(env: Env, *xs: Value) -> Value:
    return reduce(operator.mul, xs)


def _on_scalars(fn: Callable[..., Value]) -> Callable[..., Value]:
    """Run fn on float64 0-d tensors when every input is a float, so scalars follow torch's semantics
    (overflow to inf, NaN for a negative base) instead of raising like Python's math."""

    def run(env: Env, *xs: Any) -> Value:
        if any(isinstance(x, torch.Tensor) for x in xs):
            return fn(env, *xs)
        scalars = [torch.tensor(x, dtype=torch.float64) if isinstance(x, float) else x for x in xs]
        out = fn(env, *scalars)
        return float(out) if out.dim() == 0 else out  # a random draw of a constant is a tensor

    return run


_POWERS: dict[Any, Callable[[Value], Value]] = {
    sympy.Integer(2): lambda x: x * x,
    sympy.Integer(3): lambda x: x * x * x,
    sympy.Integer(-1): lambda x: 1.0 / x,
    sympy.Rational(1, 2): lambda x: torch.sqrt(x),
    sympy.Rational(-1, 2): lambda x: torch.rsqrt(x),
}


def _pow_const(exponent: sympy.Expr) -> Callable[..., Value]:
    special = _POWERS.get(exponent)
    if special is not None:
        return _on_scalars(lambda env, x: special(x))
    e = float(exponent)
    return _on_scalars(lambda env, x: torch.pow(x, e))


def _pow(env: Env, x: Value, e: Value) -> Value:
    return torch.pow(x, e)


def _number(e: sympy.Expr) -> float:
    if e is sympy.zoo:
        return math.inf
    return float(e)


def _param(e: sympy.Expr) -> int | float:
    return int(e) if e.is_Integer else float(e)


@lru_cache(maxsize=8192)
def compile_expr(expr: sympy.Expr) -> Program:
    """Compile a SymPy rule into a Program (cached: compiling a rule twice costs a dict lookup)."""
    index: dict[sympy.Basic, int] = {}
    code: list[Instruction] = []
    operands: set[str] = set()

    def emit(fn: Callable[..., Value], args: tuple[int, ...] = (), params: tuple = ()) -> int:
        code.append((fn, args, params))
        return len(code) - 1

    def visit(e: sympy.Basic) -> int:
        if e in index:
            return index[e]
        if e is F.delta:
            reg = emit(_const(DELTA))
        elif e.is_Number or isinstance(e, sympy.NumberSymbol) or e is sympy.zoo:
            reg = emit(_const(_number(e)))
        elif isinstance(e, sympy.Add):
            reg = emit(_add, tuple(visit(a) for a in e.args))
        elif isinstance(e, sympy.Mul):
            reg = emit(_mul, tuple(visit(a) for a in e.args))
        elif isinstance(e, sympy.Pow):
            base, exponent = e.args
            if exponent.is_Number:
                reg = emit(_pow_const(exponent), (visit(base),))
            else:
                reg = emit(_on_scalars(_pow), (visit(base), visit(exponent)))
        else:
            reg = _visit_entry(e)
        index[e] = reg
        return reg

    def _visit_entry(e: sympy.Basic) -> int:
        entry = NODE_ENTRIES.get(e if isinstance(e, sympy.Symbol) else type(e))
        if entry is None or entry.torch is None:
            raise CompileError(
                f"no torch mapping for SymPy node {type(e).__name__} ({e}); add a Primitive with "
                f"node={type(e).__name__} and a torch implementation to nos_symbolic/registry.py")
        if entry.kind == "operand" and entry.name in ("g", "m", "v", "y", "w"):
            operands.add(entry.name)
        args = tuple(visit(a) for a in e.args[: entry.arity])
        params = tuple(_param(p) for p in e.args[entry.arity:])
        fn = entry.torch if entry.arity == 0 else _on_scalars(entry.torch)
        return emit(fn, args, params)

    visit(expr)
    return Program(tuple(code), frozenset(operands))
