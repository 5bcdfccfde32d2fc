"""Straight-line code (lowering.py) -> numpy: the backend of probes, fingerprints and the parser.

The same Code the torch backend (compile.py) runs, op for op and in the same order, on numpy float64
arrays, so a rule's probe outputs are what its torch Program computes in float64 up to the last ulp
or two of exp, log, cos and pow (fingerprints round to 16 bits of mantissa). Nothing here imports
torch: `nos parse` and the fingerprints of a search never load it.

Semantics follow torch's float64 arithmetic: overflow is +-inf, a division by zero +-inf, a negative
base to a fractional power NaN, sign(NaN) = 0 (see the registry's numpy implementations). Constants
are numpy float64 scalars, so parts that depend on no array (a constant, or a schedule at a scalar
step) follow the same rules instead of raising like Python's float arithmetic.

An environment (`Env` in compile.py) supplies operands, the step t and total steps T, and draws;
values that are not numpy arrays (torch CPU tensors, floats) are read through np.asarray.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import sympy

from nos_symbolic.lowering import Code, Op, lower

Instruction = tuple[Callable[..., Any], tuple[int, ...], tuple[Any, ...]]


@dataclass(frozen=True)
class NumpyProgram:
    """update(env) for one rule on numpy arrays; `operands` names the tensors it reads."""

    instructions: tuple[Instruction, ...]
    operands: frozenset[str]

    def __call__(self, env: Any) -> np.ndarray:
        """The update as a float64 array shaped like env's g (a fresh array; NaN/Inf kept)."""
        if not (isinstance(env.t, (np.ndarray, np.generic)) and isinstance(env.tensor("g"), np.ndarray)):
            env = ArrayEnv(env)  # a float step too: Python's float division would raise at 1 / 0
        regs: list[Any] = []
        with np.errstate(all="ignore"):
            for fn, args, params in self.instructions:
                regs.append(fn(env, *(regs[i] for i in args), *params))
        shape = np.shape(env.tensor("g"))
        return np.array(np.broadcast_to(regs[-1], shape), dtype=np.float64)


class ArrayEnv:
    """An Env whose values are read as numpy float64 arrays (torch CPU tensors convert without a copy)."""

    def __init__(self, env: Any) -> None:
        self._env = env
        self.t = _array(env.t)
        self.T = env.T

    def tensor(self, name: str) -> np.ndarray:
        return _array(self._env.tensor(name))

    def randn(self, key: str) -> np.ndarray:
        return _array(self._env.randn(key))

    def rand(self, key: str) -> np.ndarray:
        return _array(self._env.rand(key))


def _array(x: Any) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else np.asarray(x, dtype=np.float64)


class _ConstantEnv:
    """The Env of a constant expression, which reads no operand, step or draw."""

    t = np.float64(1.0)
    T = 1.0

    def tensor(self, name: str) -> np.ndarray:
        return np.zeros(1)


def _const(value: float) -> Callable[..., np.float64]:
    number = np.float64(value)
    return lambda env: number


# op kind -> instruction; each mirrors compile.py's torch instruction of the same kind.
_OPS: dict[str, Callable[..., Any]] = {
    "add": lambda env, x, y: x + y,
    "mul": lambda env, x, y: x * y,
    "pow": lambda env, x, e: np.power(x, e),
    "recip": lambda env, x: 1.0 / x,
    "sqrt": lambda env, x: np.sqrt(x),
    "rsqrt": lambda env, x: 1.0 / np.sqrt(x),  # torch's rsqrt is 1 / sqrt(x), two roundings
}


def _instruction(op: Op) -> Instruction:
    if op.kind == "const":
        return _const(op.value), (), ()
    if op.kind == "powc":
        e = op.value
        return (lambda env, x: np.power(x, e)), op.args, ()
    if op.kind == "entry":
        return op.value.numpy, op.args, op.params
    return _OPS[op.kind], op.args, ()


def from_code(code: Code) -> NumpyProgram:
    """The numpy program of lowered code."""
    return NumpyProgram(tuple(_instruction(op) for op in code.ops), code.operands)


@lru_cache(maxsize=8192)
def numpy_program(expr: sympy.Expr) -> NumpyProgram:
    """Compile a SymPy rule into a NumpyProgram (cached per expression)."""
    return from_code(lower(expr))


def constant_value(expr: sympy.Expr) -> float:
    """The float64 value of an expression without operands, schedules or draws, as the rule computes
    it at run time (delta = 1e-8; +-inf on overflow, NaN where float64 arithmetic gives NaN)."""
    return float(from_code(lower(expr))(_ConstantEnv())[0])
