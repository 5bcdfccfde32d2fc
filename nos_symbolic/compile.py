"""SymPy expression -> straight-line torch code.

A rule compiles to a `Program`: one instruction per distinct subexpression (so shared subtrees run
once), each reading earlier registers. Arithmetic nodes (+, *, ^, numbers) are handled here; every other
SymPy node runs through the registry entry that introduced it. Values are tensors of any device and
dtype, or Python floats for parts that depend only on the step (schedules), which stay scalars.

The environment an update sees (`Env`) supplies the operand tensors, the global step t (the steps
already taken, where the schedules are taken) and total steps T, and standard random draws; the
optimizer and the fingerprint probes are two environments.

`InplaceRunner` runs a Program on flat tensors with buffers the caller allocates once: instructions
that have a kernel (the same value written into a given tensor) reuse the buffer of an input that dies
there, so an optimizer step over millions of elements allocates nothing and gives the same values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Protocol

import sympy
import torch

from nos_symbolic import functions as F
from nos_symbolic.errors import NosError
from nos_symbolic.registry import DELTA, NODE_ENTRIES

Value = Any  # torch.Tensor | float


class Env(Protocol):
    """What a compiled rule reads at one step."""

    t: Any  # global step: steps already taken (0-based, TensorFlow's global_step), float or tensor
    T: Any  # total steps of the run, for the decays

    def tensor(self, name: str) -> torch.Tensor:
        """Operand tensor: g, m, v, y or w."""

    def randn(self, key: str) -> torch.Tensor:
        """Standard normal draws shaped like g; one draw per key per step."""

    def rand(self, key: str) -> torch.Tensor:
        """Uniform [0, 1) draws shaped like g; one draw per key per step."""


class CompileError(NosError):
    """A SymPy node with no torch mapping."""


Instruction = tuple[Callable[..., Value], tuple[int, ...], tuple[Any, ...]]
Kernel = Callable[..., Any]  # (out, *values, *params): an instruction's value written into `out`


@dataclass(frozen=True)
class Program:
    """update(env) for one rule. `operands` names the tensors it reads (its state needs);
    `kernels[i]`, where not None, computes instruction i into a given tensor (see InplaceRunner)."""

    instructions: tuple[Instruction, ...]
    operands: frozenset[str]
    kernels: tuple[Kernel | None, ...] = ()

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


def _add(env: Env, x: Value, y: Value) -> Value:
    return x + y


def _mul(env: Env, x: Value, y: Value) -> Value:
    return x * y


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


def _pow(env: Env, x: Value, e: Value) -> Value:
    return torch.pow(x, e)


# --- kernels: (out, *values, *params) -> the instruction's value written into out ---
# Each gives bit-for-bit the value of its instruction (x + y with a float x is y + x, exactly).

def _add_into(out: torch.Tensor, x: Value, y: Value) -> None:
    torch.add(x, y, out=out) if isinstance(x, torch.Tensor) else torch.add(y, x, out=out)


def _mul_into(out: torch.Tensor, x: Value, y: Value) -> None:
    torch.mul(x, y, out=out) if isinstance(x, torch.Tensor) else torch.mul(y, x, out=out)


def _pow_into(out: torch.Tensor, x: Value, e: Value) -> None:
    torch.pow(x, e, out=out)


# Constant exponents with a cheaper exact form (x^2 and x^3 are emitted as products):
# exponent -> (instruction, kernel); 1.0 / x is x.reciprocal() * 1.0 in torch, the reciprocal exactly.
_POWERS: dict[Any, tuple[Callable[..., Value], Kernel]] = {
    sympy.Integer(-1): (_on_scalars(lambda env, x: 1.0 / x), lambda out, x: torch.reciprocal(x, out=out)),
    sympy.Rational(1, 2): (_on_scalars(lambda env, x: torch.sqrt(x)), lambda out, x: torch.sqrt(x, out=out)),
    sympy.Rational(-1, 2): (_on_scalars(lambda env, x: torch.rsqrt(x)),
                            lambda out, x: torch.rsqrt(x, out=out)),
}


def _pow_const(exponent: sympy.Expr) -> tuple[Callable[..., Value], Kernel]:
    special = _POWERS.get(exponent)
    if special is not None:
        return special
    e = float(exponent)
    return _on_scalars(lambda env, x: torch.pow(x, e)), lambda out, x: torch.pow(x, e, out=out)


# Registry entries whose torch implementation has an out= form (by entry name).
_ENTRY_KERNELS: dict[str, Kernel] = {
    "exp": lambda out, x: torch.exp(x, out=out),
    "log": lambda out, x: torch.log(x, out=out),
    "abs": lambda out, x: torch.abs(x, out=out),
    "sign": lambda out, x: torch.sign(x, out=out),
    "clip": lambda out, x, c: torch.clamp(x, -c, c, out=out),
}


def _number(e: sympy.Expr) -> float:
    if e is sympy.zoo:
        return math.inf
    return float(e)


def _param(e: sympy.Expr) -> int | float:
    return int(e) if e.is_Integer else float(e)


@lru_cache(maxsize=8192)
def compile_expr(expr: sympy.Expr) -> Program:
    """Compile a SymPy rule into a Program (cached: compiling a rule twice costs a dict lookup).

    Sums and products of n terms become n - 1 binary instructions, left to right, as reduce would."""
    index: dict[sympy.Basic, int] = {}
    code: list[Instruction] = []
    kernels: list[Kernel | None] = []
    operands: set[str] = set()

    def emit(fn: Callable[..., Value], args: tuple[int, ...] = (), params: tuple = (),
             kernel: Kernel | None = None) -> int:
        code.append((fn, args, params))
        kernels.append(kernel)
        return len(code) - 1

    def chain(fn: Callable[..., Value], kernel: Kernel, regs: list[int]) -> int:
        acc = regs[0]
        for reg in regs[1:]:
            acc = emit(fn, (acc, reg), (), kernel)
        return acc

    def visit(e: sympy.Basic) -> int:
        if e in index:
            return index[e]
        if e is F.delta:
            reg = emit(_const(DELTA))
        elif e is sympy.I:  # a complex intermediate: torch's real arithmetic gives NaN there
            reg = emit(_const(math.nan))
        elif e.is_Number or isinstance(e, sympy.NumberSymbol) or e is sympy.zoo:
            reg = emit(_const(_number(e)))
        elif isinstance(e, sympy.Add):
            reg = chain(_add, _add_into, [visit(a) for a in e.args])
        elif isinstance(e, sympy.Mul):
            reg = chain(_mul, _mul_into, [visit(a) for a in e.args])
        elif isinstance(e, sympy.Pow):
            reg = _visit_pow(*e.args)
        else:
            reg = _visit_entry(e)
        index[e] = reg
        return reg

    def _visit_pow(base: sympy.Expr, exponent: sympy.Expr) -> int:
        if exponent in (2, 3):  # x * x, x * x * x
            return chain(_mul, _mul_into, [visit(base)] * int(exponent))
        if exponent.is_Number:
            fn, kernel = _pow_const(exponent)
            return emit(fn, (visit(base),), (), kernel)
        return emit(_on_scalars(_pow), (visit(base), visit(exponent)), (), _pow_into)

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
        return emit(fn, args, params, _ENTRY_KERNELS.get(entry.name))

    visit(expr)
    return Program(tuple(code), frozenset(operands), tuple(kernels))


class _KindProbe:
    """A 2-element Env: what kind of value each instruction makes does not depend on the size."""

    def __init__(self, like: torch.Tensor, T: Any) -> None:
        self.t = 1.0
        self.T = 1.0 if T is None else T
        self.like = like
        self.draws: list[tuple[str, str]] = []  # (method, key) in the order the program asks

    def tensor(self, name: str) -> torch.Tensor:
        return self.like

    def randn(self, key: str) -> torch.Tensor:
        self.draws.append(("randn", key))
        return torch.zeros_like(self.like)

    def rand(self, key: str) -> torch.Tensor:
        self.draws.append(("rand", key))
        return torch.zeros_like(self.like)


class InplaceRunner:
    """A Program run on flat tensors of one dtype and device, writing into buffers the caller owns.

    A dry run on two elements tells which registers are tensors like g (same shape and dtype); each
    instruction making one and having a kernel writes it into a scratch buffer, the buffer of an input
    that dies there when there is one (an in-place kernel). Every other instruction (operands, scalars,
    random draws) runs as in `Program.__call__`. Values are bit-for-bit those of `Program.__call__`.

    `runner(env, buffers)` takes `n_buffers` tensors shaped like env.tensor("g") and returns (a, b):
    the update is a * b when the last instruction is a product of two such tensors (left undone, so
    the caller can fuse it into w - lr * a * b), else (update, None). `draws` lists the random draws,
    (method, key), in the order the program makes them.
    """

    def __init__(self, program: Program, dtype: torch.dtype, device: torch.device | str,
                 T: Any = None) -> None:
        probe = _KindProbe(torch.ones(2, dtype=dtype, device=device), T)
        like = _register_kinds(program, probe)
        self.draws: tuple[tuple[str, str], ...] = tuple(probe.draws)
        code, n = program.instructions, len(program.instructions)
        last_fn, last_args, _ = code[-1]
        self._product = last_fn is _mul and like[n - 1] and all(like[a] for a in last_args)
        self._steps, self.n_buffers = _plan(program, like, n - 1 if self._product else n)
        self._last_args = last_args

    def __call__(self, env: Env, buffers: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        regs: list[Value] = []
        for fn, args, params, buffer in self._steps:
            if buffer is None:
                regs.append(fn(env, *[regs[a] for a in args], *params))
            else:
                out = buffers[buffer]
                fn(out, *[regs[a] for a in args], *params)
                regs.append(out)
        if self._product:
            a, b = self._last_args
            return regs[a], regs[b]
        out, like = regs[-1], env.tensor("g")
        if not isinstance(out, torch.Tensor):
            return torch.full_like(like, float(out)), None
        return (out if out.shape == like.shape else out.expand_as(like).clone()), None


def _register_kinds(program: Program, probe: _KindProbe) -> list[bool]:
    """For each register: is it a tensor shaped and typed like g?"""
    regs: list[Value] = []
    with torch.no_grad():
        for fn, args, params in program.instructions:
            regs.append(fn(probe, *(regs[i] for i in args), *params))
    like = probe.like
    return [isinstance(r, torch.Tensor) and r.shape == like.shape and r.dtype == like.dtype
            and r.device == like.device for r in regs]


def _plan(program: Program, like: list[bool], stop: int) -> tuple[list[tuple], int]:
    """Steps (fn or kernel, args, params, buffer index or None) for instructions [0, stop) and the
    number of buffers. A buffer is reused once the register in it is read for the last time."""
    code = program.instructions
    kernels = program.kernels or (None,) * len(code)
    last_use = list(range(len(code)))
    for i, (_, args, _) in enumerate(code):
        for a in args:
            last_use[a] = i
    last_use[-1] = len(code)  # the result stays
    buffer_of: dict[int, int] = {}
    free: list[int] = []
    n_buffers = 0
    steps = []
    for i in range(stop):
        fn, args, params = code[i]
        for a in set(args):
            if last_use[a] == i and a in buffer_of:
                free.append(buffer_of[a])
        if kernels[i] is not None and like[i]:
            if not free:
                free.append(n_buffers)
                n_buffers += 1
            buffer_of[i] = free.pop()
            steps.append((kernels[i], args, params, buffer_of[i]))
        else:
            steps.append((fn, args, params, None))
    return steps, n_buffers
