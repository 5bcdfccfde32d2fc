"""The named families (PowerSign, AddSign, ...), recognised by structure on a rule's canonical SymPy
form, never by its text, so every spelling of a rule lands in the same place.

A rule is first split as

    update = c * (core + k * w)        c > 0 a constant (the learning rate absorbs it), k > 0
    core   = c' * s * body             c' > 0 a constant, s at most one decay (ld, cd(n) or rd(n))

where k * w is a weight-decay term ("+wd") when 0 < k / c' <= WEIGHT_DECAY_MAX (a larger multiple of w
stays in the core, which then matches nothing). `body` is matched against the named forms, with
sigma = sign(g) sign(m) and f a decay or 1:

    PowerSign      g * alpha^(c0 + k * f * sigma)      effective base alpha^k > 1 (alpha^k < 1 reverses it)
    AddSign        g * (a + k * f * sigma)             a > 0, k > 0 (alpha = a / k); expanded forms too
    Adam           m / (delta + sqrt(v))               or m / sqrt(v)   (sub-family of Adam-like)
    RMSProp        g / (delta + sqrt(v))               or g / sqrt(v)   (sub-family of Adam-like)
    Adam-like      g or m times h(v)^p                 h >= 0 an expression in v alone, p < 0
    SignMomentum   sign(m)
    Lion-like      sign(a g + b m), a, b > 0           (sub-family of SignMomentum)
    SignSGD        sign(g)
    SGD-like       g
    Momentum       m, or a g + b m with a, b > 0       (sub-family of SGD-like)

PowerSign and AddSign carry their decay on the sign term (the paper's PowerSign-cd); a decay multiplying
their whole update is a schedule, written `*ld`. The other families have no inner slot, so a decay
multiplying the update is their decay (SignMomentum-cd = cd(n) sign(m)). A variant's parent is its
generalisation: PowerSign -> PowerSign-cd -> PowerSign-cd*ld -> PowerSign-cd*ld+wd, Adam-like -> Adam
-> Adam+wd. A rule that merely contains sign(g), such as sign(g) exp(m) or sign(g) sign(m), is in none.
sign(a b) is read as sign(a) sign(b), so sign(g m) is PowerSign's sigma and sign(adam) is sign(m).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import sympy

from nos_symbolic import functions as F
from nos_symbolic.registry import DELTA
from nos_symbolic.rule import Rule, parse_rule

WEIGHT_DECAY_MAX = 0.1  # the paper's weight operands go up to 1e-1 * w

# A named form's parent when it specialises another named form.
BASE_PARENTS = {"Adam": "Adam-like", "RMSProp": "Adam-like", "Lion-like": "SignMomentum",
                "Momentum": "SGD-like"}
# Families whose decay f multiplies the sign term rather than the whole update.
INNER_DECAY = frozenset({"PowerSign", "AddSign"})

_SIGMA = Counter([sympy.sign(F.g), sympy.sign(F.m)])
# Nodes that vary though they have no free symbols: cd(n), rd(n), drop(2, p).
_VARYING = (F.CosineDecay, F.RestartDecay, F.Drop)


@dataclass(frozen=True)
class FamilyMatch:
    """Where a rule sits among the named families (see the module docstring)."""

    base: str
    decay: str | None = None
    schedule: str | None = None
    weight_decay: bool = False

    @property
    def lineage(self) -> tuple[str, ...]:
        """Family names from the most general to this rule's own, e.g. (PowerSign, PowerSign-cd)."""
        names = [BASE_PARENTS[self.base]] if self.base in BASE_PARENTS else []
        name = self.base
        names.append(name)
        for part in (f"-{self.decay}" if self.decay else "", f"*{self.schedule}" if self.schedule else "",
                     "+wd" if self.weight_decay else ""):
            if part:
                name += part
                names.append(name)
        return tuple(names)

    @property
    def name(self) -> str:
        return self.lineage[-1]


def classify(expr: Rule | sympy.Expr) -> FamilyMatch | None:
    """The named family of a rule's canonical expression, or None when it is in none."""
    if isinstance(expr, Rule):
        expr = expr.canonical
    expr = _split_sign_products(expr)
    split = _split_product(expr, take_decays=False)
    if split is None or split[0] <= 0:
        return None
    core_terms, weight = [], 0.0
    for term in sympy.Add.make_args(split[2]):
        coeff, var = term.as_coeff_Mul()
        if var == F.w and coeff > 0:
            weight += float(coeff)
        else:
            core_terms.append(term)
    split = _split_product(sympy.factor_terms(sympy.Add(*core_terms)), take_decays=True) if core_terms else None
    if split is None or split[0] <= 0 or len(split[1]) > 1:
        return None
    scale, decays, body = split
    if weight / scale > WEIGHT_DECAY_MAX:  # the weight term counts relative to the core's own scale
        return None
    outer = decays[0] if decays else None
    for matcher in (_powersign, _addsign, _adam_like, _sign_family, _sgd_like):
        found = matcher(body)
        if found is not None:
            base, inner = found
            if base in INNER_DECAY:
                return FamilyMatch(base, inner, outer, weight > 0)
            return FamilyMatch(base, outer, None, weight > 0)
    return None


def family_name(rule: Rule | str) -> str | None:
    """The named family of a rule or rule text, e.g. "PowerSign-cd"; None outside the named families."""
    match = classify(parse_rule(rule) if isinstance(rule, str) else rule)
    return None if match is None else match.name


# --- structural pieces ------------------------------------------------------------------------------

def _split_sign_products(expr: sympy.Expr) -> sympy.Expr:
    """sign(a b) -> sign(a) sign(b), so sign(g m) reads as PowerSign's sign(g) sign(m)."""
    return expr.replace(lambda e: isinstance(e, sympy.sign) and e.args[0].is_Mul,
                        lambda e: sympy.Mul(*(sympy.sign(a) for a in e.args[0].args)))


def _decay_label(e: sympy.Expr) -> str | None:
    if e == F.ld:
        return "ld"
    if isinstance(e, (F.CosineDecay, F.RestartDecay)):
        return e.label
    return None


def is_constant(e: sympy.Expr) -> bool:
    """No operand and nothing that varies: numbers and the protected division's delta only."""
    return not (e.free_symbols - {F.delta}) and not e.has(*_VARYING)


def _value(e: sympy.Expr) -> float | None:
    """A constant's value with the protected division's delta substituted; None if not a real number."""
    try:
        x = complex(sympy.N(e.subs(F.delta, DELTA)))
    except (TypeError, ValueError):
        return None
    return x.real if x.imag == 0 and math.isfinite(x.real) else None


def _split_product(e: sympy.Expr, take_decays: bool) -> tuple[float, list[str], sympy.Expr] | None:
    """e = c * (decays) * body: (c, decay labels, body); None if a constant factor is not real."""
    scale, decays, rest = 1.0, [], []
    for factor in sympy.Mul.make_args(e):
        label = _decay_label(factor) if take_decays else None
        if is_constant(factor):
            value = _value(factor)
            if value is None:
                return None
            scale *= value
        elif label is not None:
            decays.append(label)
        else:
            rest.append(factor)
    return scale, decays, sympy.Mul(*rest)


def _sign_term(term: sympy.Expr) -> tuple[float, str | None] | None:
    """term = k * f * sign(g) * sign(m): (k, decay label or None)."""
    k, decay, signs = 1.0, None, []
    for factor in sympy.Mul.make_args(term):
        label = _decay_label(factor)
        if is_constant(factor):
            value = _value(factor)
            if value is None:
                return None
            k *= value
        elif label is not None and decay is None:
            decay = label
        else:
            signs.append(factor)
    return (k, decay) if Counter(signs) == _SIGMA else None


def _times_g(body: sympy.Expr) -> sympy.Expr | None:
    """The other factor of g * x, or None if body is not g times one factor."""
    factors = sympy.Mul.make_args(body)
    if len(factors) != 2 or F.g not in factors:
        return None
    return factors[0] if factors[1] == F.g else factors[1]


def _powersign(body: sympy.Expr) -> tuple[str, str | None] | None:
    power = _times_g(body)
    if power is None:
        return None
    if isinstance(power, sympy.exp):
        log_base, exponent = 1.0, power.args[0]
    elif power.is_Pow and is_constant(power.base):
        base = _value(power.base)
        if base is None or base <= 0:
            return None
        log_base, exponent = math.log(base), power.exp
    else:
        return None
    varying = [t for t in sympy.Add.make_args(exponent) if not is_constant(t)]  # constants scale only
    found = _sign_term(varying[0]) if len(varying) == 1 else None
    if found is None or found[0] * log_base <= 0:
        return None
    return "PowerSign", found[1]


def _addsign(body: sympy.Expr) -> tuple[str, str | None] | None:
    factor = _times_g(body)
    if factor is None or not factor.is_Add:
        return None
    terms = sympy.Add.make_args(sympy.expand(factor) if sympy.count_ops(factor) < 64 else factor)
    constant = sympy.Add(*(t for t in terms if is_constant(t)))
    varying = [t for t in terms if not is_constant(t)]
    found = _sign_term(varying[0]) if len(varying) == 1 else None
    alpha = _value(constant)
    if found is None or alpha is None or alpha <= 0 or found[0] <= 0:
        return None
    return "AddSign", found[1]


def _adam_like(body: sympy.Expr) -> tuple[str, None] | None:
    factors = sympy.Mul.make_args(body)
    if len(factors) != 2 or not {F.g, F.m} & set(factors):
        return None
    numerator = F.g if F.g in factors else F.m
    denominator = factors[0] if factors[1] == numerator else factors[1]
    if not (denominator.is_Pow and denominator.exp.is_Number and denominator.exp < 0):
        return None
    inner = denominator.base  # a non-negative expression in v alone (v >= 0 and delta > 0 are assumed)
    if F.v not in inner.free_symbols or inner.free_symbols - {F.v, F.delta} or inner.has(*_VARYING) \
            or not inner.is_nonnegative:
        return None
    if denominator.subs(F.delta, 0) == F.v ** sympy.Rational(-1, 2):
        return ("Adam" if numerator == F.m else "RMSProp"), None
    return "Adam-like", None


def _positive_mix(e: sympy.Expr) -> bool:
    """e = a g + b m with a, b > 0."""
    terms = sympy.Add.make_args(e)
    if len(terms) != 2:
        return False
    parts = {var: coeff for coeff, var in (t.as_coeff_Mul() for t in terms)}
    return set(parts) == {F.g, F.m} and all(c.is_Number and c > 0 for c in parts.values())


def _sign_family(body: sympy.Expr) -> tuple[str, None] | None:
    if body == sympy.sign(F.m):
        return "SignMomentum", None
    if body == sympy.sign(F.g):
        return "SignSGD", None
    if isinstance(body, sympy.sign) and _positive_mix(body.args[0]):
        return "Lion-like", None
    return None


def _sgd_like(body: sympy.Expr) -> tuple[str, None] | None:
    if body == F.g:
        return "SGD-like", None
    if body == F.m or _positive_mix(body):
        return "Momentum", None
    return None


