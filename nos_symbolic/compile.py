"""Straight-line code (lowering.py) -> torch: the backend the optimizer runs.

A rule compiles to a `Program`: one instruction per op of its lowered `Code`, each reading earlier
registers. Values are tensors of any device and dtype, or Python floats for parts that depend only on
the step (schedules), which stay scalars. Registry entries run through their `torch` implementation.

The environment an update sees (`Env`) supplies the operand tensors, the global step t (the steps
already taken, where the schedules are taken) and total steps T, and standard random draws; the
optimizer is one environment, and any object with these fields is another.

`InplaceRunner` runs a Program on flat tensors with buffers the caller allocates once: instructions
that have a kernel (the same value written into a given tensor) reuse the buffer of an input that dies
there, so an optimizer step over millions of elements allocates nothing and gives the same values.

Probes and fingerprints never run torch: they run the same Code with numpy (`Program.numpy`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Callable, Protocol

import sympy
import torch

from nos_symbolic.lowering import CompileError, Code, Op, lower
from nos_symbolic.numeric import NumpyProgram, from_code

__all__ = ["CompileError", "Env", "InplaceRunner", "Program", "compile_expr"]

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


Instruction = tuple[Callable[..., Value], tuple[int, ...], tuple[Any, ...]]
Kernel = Callable[..., Any]  # (out, *values, *params): an instruction's value written into `out`


@dataclass(frozen=True)
class Program:
    """update(env) for one rule. `operands` names the tensors it reads (its state needs);
    `kernels[i]`, where not None, computes instruction i into a given tensor (see InplaceRunner);
    `code` is the lowered code it runs."""

    instructions: tuple[Instruction, ...]
    operands: frozenset[str]
    kernels: tuple[Kernel | None, ...] = ()
    code: Code | None = None

    def __call__(self, env: Env) -> torch.Tensor:
        regs: list[Value] = []
        for fn, args, params in self.instructions:
            regs.append(fn(env, *(regs[i] for i in args), *params))
        out = regs[-1]
        like = env.tensor("g")
        if not isinstance(out, torch.Tensor):
            return torch.full_like(like, float(out))
        return out if out.shape == like.shape else out.expand_as(like).clone()

    @cached_property
    def numpy(self) -> NumpyProgram:
        """The same code run on numpy float64 arrays (what probes and fingerprints evaluate)."""
        if self.code is None:
            raise CompileError("this Program was not compiled from lowered code")
        return from_code(self.code)


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


def _pow_const(e: float) -> tuple[Callable[..., Value], Kernel]:
    return _on_scalars(lambda env, x: torch.pow(x, e)), lambda out, x: torch.pow(x, e, out=out)


# op kind -> (instruction, kernel); 1.0 / x is x.reciprocal() * 1.0 in torch, the reciprocal exactly.
_OPS: dict[str, tuple[Callable[..., Value], Kernel]] = {
    "add": (_add, _add_into),
    "mul": (_mul, _mul_into),
    "pow": (_on_scalars(_pow), _pow_into),
    "recip": (_on_scalars(lambda env, x: 1.0 / x), lambda out, x: torch.reciprocal(x, out=out)),
    "sqrt": (_on_scalars(lambda env, x: torch.sqrt(x)), lambda out, x: torch.sqrt(x, out=out)),
    "rsqrt": (_on_scalars(lambda env, x: torch.rsqrt(x)), lambda out, x: torch.rsqrt(x, out=out)),
}

# Registry entries whose torch implementation has an out= form (by entry name).
_ENTRY_KERNELS: dict[str, Kernel] = {
    "exp": lambda out, x: torch.exp(x, out=out),
    "log": lambda out, x: torch.log(x, out=out),
    "abs": lambda out, x: torch.abs(x, out=out),
    "sign": lambda out, x: torch.sign(x, out=out),
    "clip": lambda out, x, c: torch.clamp(x, -c, c, out=out),
}


def _instruction(op: Op) -> tuple[Instruction, Kernel | None]:
    if op.kind == "const":
        return (_const(op.value), (), ()), None
    if op.kind == "powc":
        fn, kernel = _pow_const(op.value)
        return (fn, op.args, ()), kernel
    if op.kind == "entry":
        entry = op.value
        fn = entry.torch if entry.arity == 0 else _on_scalars(entry.torch)
        return (fn, op.args, op.params), _ENTRY_KERNELS.get(entry.name)
    fn, kernel = _OPS[op.kind]
    return (fn, op.args, ()), kernel


@lru_cache(maxsize=8192)
def compile_expr(expr: sympy.Expr) -> Program:
    """Compile a SymPy rule into a torch Program (cached: compiling a rule twice costs a dict lookup)."""
    code = lower(expr)
    pairs = [_instruction(op) for op in code.ops]
    return Program(tuple(i for i, _ in pairs), code.operands, tuple(k for _, k in pairs), code)


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
