"""The one table that defines every name of the DSL.

Each `Primitive` says, for one name: its kind and arity, its numeric parameters, how to build its SymPy
expression, which SymPy node it introduces and how that node runs on torch tensors (the optimizer) and on
numpy arrays (probes, fingerprints, the parser's constant folding), how it prints in LaTeX, and which
DSL snippets the search vocabulary draws from it. Parser, compiler, LaTeX printer,
search space and docs all read this table; adding a primitive is one entry here.

Infix syntax maps onto entries: `+ - * / ^ **` and unary `-` are `add sub mul div pow pow neg`.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import sympy

from nos_symbolic import functions as F

Kind = Literal["operand", "schedule", "unary", "binary"]

DELTA = 1e-8  # protected division x / (y + delta); also Adam's eps, so m / sqrt(v) is Adam's step
NOISE_STD = 0.01  # the paper's N(0, 0.01); read as a standard deviation
ANNEAL_POWER = 0.55  # anneal ~ N(0, 1 / (1 + t)^0.55): a variance, so the std decays as (1 + t)^-0.275


class _LazyTorch:
    """torch, imported at the first use of one of its names: the parser, the probes and the
    fingerprints read this table without loading it; only the `torch` implementations need it."""

    def __getattr__(self, name: str) -> Any:
        import torch as module

        value = getattr(module, name)
        setattr(self, name, value)  # later reads are a plain attribute lookup
        return value


torch = _LazyTorch()


@dataclass(frozen=True)
class Param:
    """A numeric parameter written after the expression arguments, e.g. c in clip(x, c)."""

    name: str
    check: Callable[[float], bool]
    requirement: str  # shown when `check` fails, e.g. "c > 0"
    default: float | None = None


@dataclass(frozen=True)
class Primitive:
    """One DSL name. `build` takes SymPy args then params; `torch` takes (env, *values, *params) with
    tensor or float values, `numpy` the same with numpy float64 values, computing what `torch` does."""

    name: str
    kind: Kind
    arity: int
    build: Callable[..., sympy.Expr]
    doc: str
    params: tuple[Param, ...] = ()
    node: Any = None  # the SymPy class or Symbol this entry introduces, run by `torch` and `numpy`
    torch: Callable[..., Any] | None = None
    numpy: Callable[..., Any] | None = None
    latex: str = ""  # LaTeX for an operand symbol (functions print through their node)
    search: tuple[str, ...] = ()  # DSL snippets for the search vocabulary ({x}, {y} are operands)
    fresh_draw: bool = False  # each application gets its own random draw (drop)


# --- implementations: values are torch tensors, numpy arrays or floats (step-only subexpressions
# stay scalars); those below read only the env and use only arithmetic, so one serves both backends ---

def _clamped_step(env) -> Any:
    """min(t, T) for a numpy array, a number or a torch tensor t."""
    t = env.t
    if isinstance(t, np.ndarray):
        return np.minimum(t, env.T)
    return min(t, env.T) if isinstance(t, numbers.Real) else torch.clamp(t, max=env.T)


def _cos(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return np.cos(x)
    return math.cos(x) if isinstance(x, numbers.Real) else torch.cos(x)


def _read(name: str) -> Callable[[Any], Any]:
    """An operand: the env's tensor of that name."""
    return lambda env: env.tensor(name)


def _ld(env) -> Any:
    """ld(t) = (T - t) / T; t = env.t is the global step (steps already taken, TensorFlow's global_step)."""
    return (env.T - _clamped_step(env)) / env.T


def _cd(env, n: float) -> Any:
    """cd(t; n) = 0.5 * (1 + cos(2 pi n t / T))."""
    return 0.5 * (1.0 + _cos(2.0 * math.pi * n * _clamped_step(env) / env.T))


def _rd(env, n: float) -> Any:
    """rd(t; n) = 0.5 * (1 + cos(pi * ((n t) mod T) / T))."""
    return 0.5 * (1.0 + _cos(math.pi * ((n * _clamped_step(env)) % env.T) / env.T))


def _drop(env, x: Any, p: float, k: int) -> Any:
    """Inverted dropout with drop probability p: x * (u >= p) / (1 - p)."""
    keep = env.rand(f"drop{k}") >= p
    return x * keep / (1.0 - p)


def _noise(env) -> Any:
    """N(0, 1) * 0.01."""
    return NOISE_STD * env.randn("noise")


def _anneal(env) -> Any:
    """N(0, 1) * (1 + t)^-0.275 at the global step t, as TensorFlow's noisy decays."""
    return env.randn("anneal") * (1.0 + env.t) ** (-ANNEAL_POWER / 2)


# --- numpy implementations of what torch's functions do in float64 ---

def _np_sign(env, x: Any) -> Any:
    """torch.sign: -1, 0 or 1, and 0 for NaN (numpy's sign gives NaN there)."""
    return np.where(np.isnan(x), 0.0, np.sign(x))


def _np_clip(env, x: Any, c: float) -> Any:
    """torch.clamp(x, -c, c): NaN stays NaN."""
    return np.minimum(np.maximum(x, -c), c)


def _protected_div(x: sympy.Expr, y: sympy.Expr) -> sympy.Expr:
    return x / (y + F.delta)


def _pow(x: sympy.Expr, y: sympy.Expr) -> sympy.Expr:
    # An exact power of a number has about bits(c) * |y| bits (9^9^9 would never finish), and SymPy
    # may compute c^y for any number c inside x (it distributes over products, multiplies nested
    # exponents and puts sums over a common denominator). Past F.MAX_EXACT_BITS a number to a number
    # is computed as the rule computes it in float64 (inf on overflow, NaN for a negative base to a
    # fractional power); inside a symbolic base the numbers at risk become floats first.
    if y.is_Number:
        at_risk = {n for n, weight in _powered_numbers(x, y) if F.number_bits(n) * weight > F.MAX_EXACT_BITS}
        if at_risk and x.is_Number:
            with np.errstate(all="ignore"):
                return F.float_number(float(np.power(np.float64(float(x)), np.float64(float(y)))))
        if at_risk:
            x = x.xreplace({n: F.as_float_number(n) for n in at_risk})
    result = sympy.Pow(x, y)
    # SymPy takes the complex branch for a negative base ((-1)^0.5 = I); torch gives NaN: a number
    # to a number is NaN, and a symbolic power stays unevaluated so the rule computes what torch does.
    if not result.has(sympy.I):
        return result
    return sympy.nan if x.is_Number and y.is_Number else sympy.Pow(x, y, evaluate=False)


def _powered_numbers(x: sympy.Expr, y: sympy.Expr) -> list[tuple[sympy.Expr, float]]:
    """(number, the power SymPy may raise it to) for the numbers of x^y: through sums and products
    with y, through a power b^k with k * y. Arguments of functions are not entered (exp(a)^y is
    exp(a * y)). 0, 1 and -1 are left out: their powers are cheap exactly."""
    found, stack = [], [(x, abs(float(y)) if y is not sympy.nan else 0.0)]
    while stack:
        e, weight = stack.pop()
        if e.is_Number:
            if e not in (0, 1, -1):
                found.append((e, weight))
        elif isinstance(e, (sympy.Add, sympy.Mul)):
            stack.extend((a, weight) for a in e.args)
        elif isinstance(e, sympy.Pow):
            k = abs(float(e.exp)) if e.exp.is_Number and e.exp is not sympy.nan else 1.0
            stack.append((e.base, weight * max(k, 1.0)))
    return found


_positive = Param("c", lambda c: c > 0, "c > 0")
_probability = Param("p", lambda p: 0 <= p < 1, "0 <= p < 1")
_periods = lambda default: Param("n", lambda n: n > 0, "n > 0", default)  # noqa: E731


PRIMITIVES: tuple[Primitive, ...] = (
    # operands
    Primitive("g", "operand", 0, lambda: F.g, "the gradient", node=F.g,
              torch=_read("g"), numpy=_read("g"), latex="g", search=("g", "sign(g)")),
    Primitive("g2", "operand", 0, lambda: F.g**2, "g^2, elementwise", search=("g2",)),
    Primitive("g3", "operand", 0, lambda: F.g**3, "g^3, elementwise", search=("g3",)),
    Primitive("m", "operand", 0, lambda: F.m, "running average of g (beta1 = 0.9), bias-corrected",
              node=F.m, torch=_read("m"), numpy=_read("m"), latex=r"\hat{m}", search=("m", "sign(m)")),
    Primitive("v", "operand", 0, lambda: F.v, "running average of g^2 (beta2 = 0.999), bias-corrected",
              node=F.v, torch=_read("v"), numpy=_read("v"), latex=r"\hat{v}", search=("v",)),
    Primitive("y", "operand", 0, lambda: F.y, "running average of g^3 (beta3 = 0.999), bias-corrected",
              node=F.y, torch=_read("y"), numpy=_read("y"), latex=r"\hat{\gamma}", search=("y",)),
    Primitive("w", "operand", 0, lambda: F.w, "the weight itself (weight-decay terms such as 1e-4*w)",
              node=F.w, torch=_read("w"), numpy=_read("w"), latex="w",
              search=("1e-4*w", "1e-3*w", "1e-2*w", "1e-1*w")),
    Primitive("noise", "operand", 0, lambda: F.noise,
              "Gaussian noise N(0, 0.01^2), fresh per step and element (0.01 is the std)",
              node=F.noise, torch=_noise, numpy=_noise, latex=r"\epsilon",
              search=("noise",)),
    Primitive("anneal", "operand", 0, lambda: F.anneal,
              "annealed noise N(0, 1 / (1 + t)^0.55) at the global step t (0-based), fresh per step and element",
              node=F.anneal, torch=_anneal, numpy=_anneal, latex=r"\epsilon_t", search=("anneal",)),
    Primitive("adam", "operand", 0, lambda: _protected_div(F.m, sympy.sqrt(F.v)),
              "Adam's direction m / (sqrt(v) + delta)", search=("adam",)),
    Primitive("rmsprop", "operand", 0, lambda: _protected_div(F.g, sympy.sqrt(F.v)),
              "RMSProp's direction g / (sqrt(v) + delta)", search=("rmsprop",)),
    Primitive("e", "operand", 0, lambda: sympy.E, "Euler's number"),
    # schedules of the step t over T total steps
    Primitive("ld", "schedule", 0, lambda: F.ld,
              "linear decay (T - t) / T at the global step t (steps taken, 0-based)", node=F.ld,
              torch=_ld, numpy=_ld,
              latex=r"\operatorname{ld}(t)", search=("ld",)),
    Primitive("cd", "schedule", 0, F.CosineDecay,
              "cosine decay 0.5 (1 + cos(2 pi n t / T)) at the global step t, n = 0.5",
              params=(_periods(0.5),), node=F.CosineDecay, torch=_cd, numpy=_cd, search=("cd",)),
    Primitive("rd", "schedule", 0, F.RestartDecay,
              "restart decay 0.5 (1 + cos(pi ((n t) mod T) / T)) at the global step t, n = 1",
              params=(_periods(1.0),), node=F.RestartDecay, torch=_rd, numpy=_rd, search=("rd",)),
    # unary functions
    Primitive("id", "unary", 1, lambda x: x, "identity", search=("{x}",)),
    Primitive("neg", "unary", 1, lambda x: -x, "negation -x", search=("neg({x})",)),
    Primitive("exp", "unary", 1, sympy.exp, "exp(x)", node=sympy.exp,
              torch=lambda env, x: torch.exp(x), numpy=lambda env, x: np.exp(x), search=("exp({x})",)),
    Primitive("log", "unary", 1, lambda x: sympy.log(sympy.Abs(x)), "log|x|", node=sympy.log,
              torch=lambda env, x: torch.log(x), numpy=lambda env, x: np.log(x), search=("log({x})",)),
    Primitive("sqrt", "unary", 1, lambda x: sympy.sqrt(sympy.Abs(x)), "sqrt|x|",
              search=("sqrt({x})",)),
    Primitive("abs", "unary", 1, sympy.Abs, "|x|", node=sympy.Abs, torch=lambda env, x: torch.abs(x),
              numpy=lambda env, x: np.abs(x)),
    Primitive("sign", "unary", 1, sympy.sign, "sign(x) in {-1, 0, 1}", node=sympy.sign,
              torch=lambda env, x: torch.sign(x), numpy=_np_sign, search=("sign({x})",)),
    Primitive("clip", "unary", 1, F.Clip, "clamp x to [-c, c]", params=(_positive,), node=F.Clip,
              torch=lambda env, x, c: torch.clamp(x, -c, c), numpy=_np_clip,
              search=("clip({x}, 1e-5)", "clip({x}, 1e-4)", "clip({x}, 1e-3)")),
    Primitive("drop", "unary", 1, F.make_drop, "dropout of x with drop probability p (rescaled by 1/(1-p))",
              params=(_probability,), node=F.Drop, torch=_drop, numpy=_drop, fresh_draw=True,
              search=("drop({x}, 0.1)", "drop({x}, 0.3)", "drop({x}, 0.5)")),
    # binary functions
    Primitive("add", "binary", 2, lambda x, y: x + y, "x + y", search=("{x} + {y}",)),
    Primitive("sub", "binary", 2, lambda x, y: x - y, "x - y", search=("{x} - {y}",)),
    Primitive("mul", "binary", 2, lambda x, y: x * y, "x * y", search=("{x} * {y}",)),
    Primitive("div", "binary", 2, _protected_div, "protected division x / (y + delta), delta = 1e-8",
              search=("{x} / {y}",)),
    Primitive("pow", "binary", 2, _pow, "x ^ y", search=("{x} ^ {y}",)),
    Primitive("keep", "binary", 2, lambda x, y: x, "keep-left: x", search=("keep({x}, {y})",)),
)

REGISTRY: dict[str, Primitive] = {p.name: p for p in PRIMITIVES}

# Numeric constants among the search's operands (the paper's 1 and 2).
SEARCH_CONSTANTS: tuple[str, ...] = ("1", "2")

# Named rules: one line of DSL each; {f} is the sign decay (1, ld, cd or rd).
DECAYS: tuple[str, ...] = ("ld", "cd", "rd")
NAMED_RULES: dict[str, str] = {
    "sgd": "g",
    "powersign": "e^({f} * sign(g) * sign(m)) * g",
    "addsign": "(1 + {f} * sign(g) * sign(m)) * g",
}

# SymPy node -> the entry that runs it on tensors and arrays (the compilers' view of the table).
NODE_ENTRIES: dict[Any, Primitive] = {p.node: p for p in PRIMITIVES if p.node is not None}


def named_rule_text(name: str, decay: str | None = None) -> str:
    """The DSL text of a named rule, e.g. named_rule_text("powersign", "cd")."""
    return NAMED_RULES[name].format(f=decay or "1")


def latex_symbol_names() -> dict[sympy.Symbol, str]:
    """How operand symbols print in LaTeX (m -> \\hat{m}, ...)."""
    names = {p.node: p.latex for p in PRIMITIVES if isinstance(p.node, sympy.Symbol) and p.latex}
    names[F.delta] = r"\delta"
    return names
