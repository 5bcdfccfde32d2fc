"""Canonical SymPy -> DSL text: the spelling of a rule that a person reads.

`to_dsl(rule)` prints a rule's canonical expression in the registry's own names, as short as the grammar
allows and always re-parsing to the same key:

    m/(delta + sqrt(v)) + sign(g)    ->  adam + sign(g)
    -drop0(g**2, 1/10) + Abs(w)      ->  abs(w) - drop(g^2, 0.1)
    g*exp(cd(1/2)*sign(g)*sign(m))   ->  powersign-cd

What the printer relies on:
  - Functions print through the registry entry that introduced their SymPy node (exp, log, abs, sign,
    clip(x, c), drop(x, p), cd(n), rd(n)); a parameter equal to its default is left out.
  - Operands whose SymPy form is a product (adam = m/(sqrt(v) + delta), rmsprop) are read back out of a
    product, with their powers; a whole rule equal to a named rule prints as its name (powersign-cd).
  - The protected division x / (y + delta) is the only place delta occurs, so a factor (y + delta)^-k
    prints as `/ y` (k times), and any other power of (y + delta) as `(1/y)^-k`, which SymPy folds back.
  - log|x| and sqrt|x| are the DSL's log and sqrt: log(Abs(x)) prints as `log(x)`, and Abs(x)^(1/2) as
    `sqrt(x)`; an absolute value the DSL function adds anyway is left out.
  - Numbers print as exact decimals, the shorter of `0.001` and `1e-3`; a fraction with no finite
    decimal, such as 1/3, as `3^-1` (SymPy folds the power back into the fraction).
  - Sums put a positive term first (`sign(m) - v`), products put their numbers first (`1e-4*w`).

Every printed text is parsed back before it is returned. A rule whose canonical form the printer cannot
spell so that it re-parses (SymPy rewrites some nestings of the protected division that no DSL text
spells directly) prints as its own text, which re-parses by definition.
"""
from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Sequence

import sympy

from nos_symbolic import functions as F
from nos_symbolic.canonical import canonical_form, canonical_text
from nos_symbolic.errors import NosError, RuleError
from nos_symbolic.parse import parse_expr
from nos_symbolic.registry import DECAYS, NAMED_RULES, NODE_ENTRIES, PRIMITIVES, REGISTRY, named_rule_text
from nos_symbolic.rule import Rule

# Binding strength of printed text, loosest first: a child looser than its slot needs parentheses.
SUM, PRODUCT, NEGATION, POWER, ATOM = range(5)

MAX_REPEATED_DIVISIONS = 3  # (y + delta)^-3 prints as x/y/y/y; beyond that as x*(1/y)^4
MAX_PLAIN_INTEGER_DIGITS = 6  # longer round integers print in scientific form: 1e8

_X = sympy.Symbol("x", real=True)


class DslError(NosError):
    """A SymPy expression the DSL printer cannot spell."""


def _unmapped(expr: sympy.Basic) -> DslError:
    # As PySR's exporters do: say which node is missing and where its spelling goes.
    name = type(expr).__name__
    return DslError(
        f"no DSL spelling for the SymPy node {name} (in {sympy.sstr(expr)}): give the primitive that "
        f"makes it a registry entry in nos_symbolic/registry.py with node={name} (the printer then writes "
        f"it as name(args, params)), or add a case for {name} to nos_symbolic.dsl._Printer.print")


# --- the registry's view for printing ---------------------------------------------------------------

def _product_operands() -> tuple[tuple[str, dict[sympy.Expr, sympy.Expr]], ...]:
    """Operands whose SymPy form is a product (adam, rmsprop), as name -> {base: exponent}."""
    found = []
    for p in PRIMITIVES:
        if p.kind == "operand" and p.node is None:
            expr = p.build()
            if expr.is_Mul:
                found.append((p.name, expr.as_powers_dict()))
    return tuple(found)


def _constant_operands() -> dict[sympy.Expr, str]:
    """Operands that are constants (e -> E)."""
    return {p.build(): p.name for p in PRIMITIVES
            if p.kind == "operand" and p.node is None and p.build().is_number}


def _abs_wrapped() -> frozenset[type]:
    """Function nodes whose DSL function takes |x| first (log x = log|x|): their Abs is not printed."""
    return frozenset(p.node for p in PRIMITIVES if p.kind == "unary" and isinstance(p.node, type)
                     and not p.params and p.node is not sympy.Abs and p.build(_X) == p.node(sympy.Abs(_X)))


# SymPy's non-finite numbers as the DSL text that makes them: 0^-1 is folded to float64's inf, as
# torch computes it, and so is a power beyond float range (see the registry's pow); zoo is how older
# versions stored 0^-1.
NON_FINITE: dict[sympy.Expr, str] = {sympy.zoo: "0^-1", sympy.oo: "0^-1"}
PRODUCT_OPERANDS = _product_operands()
CONSTANT_OPERANDS = _constant_operands()
ABS_WRAPPED = _abs_wrapped()
SQRT = REGISTRY["sqrt"].name
ABS = REGISTRY["abs"].name


@lru_cache(maxsize=1)
def _named_rules() -> dict[str, str]:
    """Canonical text -> the named rule it is (powersign, addsign-cd, ...); sgd is plain `g`."""
    names = {}
    for name in NAMED_RULES:
        for decay in (None, *DECAYS):
            if name == "sgd" and decay is not None:
                continue
            text = f"{name}-{decay}" if decay else name
            if name != "sgd":
                names[canonical_text(canonical_form(parse_expr(named_rule_text(name, decay))))] = text
    return names


# --- numbers ----------------------------------------------------------------------------------------

def number_text(value: sympy.Rational) -> str:
    """An exact DSL literal for a non-negative rational: 3, 0.5, 1e-4, or 3^-1 when no decimal is exact."""
    p, q = int(value.p), int(value.q)
    if p < 0:
        raise ValueError(f"number_text takes a non-negative number, got {value}")
    rest = q
    for prime in (2, 5):
        while rest % prime == 0:
            rest //= prime
    if rest != 1:
        inverse = f"{q}^-1"
        return inverse if p == 1 else f"{number_text(sympy.Integer(p))}*{inverse}"
    sign, digits, exponent = (Decimal(p) / Decimal(q)).normalize().as_tuple()
    mantissa = "".join(map(str, digits))
    if exponent >= 0 and len(mantissa) + exponent <= MAX_PLAIN_INTEGER_DIGITS:
        return mantissa + "0" * exponent
    plain = format(Decimal(p) / Decimal(q), "f")
    power = exponent + len(mantissa) - 1
    scientific = mantissa[0] + (f".{mantissa[1:]}" if len(mantissa) > 1 else "") + f"e{power}"
    return plain if len(plain) <= len(scientific) and exponent < 0 else scientific


def _number(value: sympy.Number) -> tuple[str, int]:
    if value in CONSTANT_OPERANDS:
        return CONSTANT_OPERANDS[value], ATOM
    if not value.is_Rational:
        raise DslError(f"no DSL literal spells the number {value} exactly (floats and infinities come from "
                       f"powers beyond float range; write the power itself)")
    text = number_text(abs(value))
    strength = ATOM if "^" not in text else (POWER if "*" not in text else PRODUCT)
    if value < 0:
        return "-" + _wrap(text, strength, POWER), NEGATION
    return text, strength


def _wrap(text: str, strength: int, needed: int) -> str:
    return text if strength >= needed else f"({text})"


# --- the printer ------------------------------------------------------------------------------------

def _protected_base(expr: sympy.Expr) -> sympy.Expr | None:
    """y when expr is y + delta (the protected division's denominator), else None."""
    if expr == F.delta:
        return sympy.Integer(0)
    if expr.is_Add and F.delta in expr.args:
        return expr - F.delta
    return None


def _unabs(expr: sympy.Expr) -> sympy.Expr:
    """A simpler x with |x| = expr, for DSL functions that take |x| anyway: |g| -> g, |w|/1000 -> w/1000."""
    if isinstance(expr, sympy.Abs):
        return expr.args[0]
    strip = lambda e: e.args[0] if isinstance(e, sympy.Abs) else e  # noqa: E731
    candidates = (expr.replace(lambda e: isinstance(e, sympy.Abs), strip),  # every |.| inside
                  sympy.Mul(*map(strip, sympy.Mul.make_args(expr))))  # only the product's own factors
    for candidate in candidates:
        if candidate != expr and sympy.Abs(candidate) == expr:
            return candidate
    return expr


class _Printer:
    """Recursive printer: each method returns (text, binding strength). A careful printer checks the
    products it prints and tries SymPy's other spellings where they do not re-parse."""

    def __init__(self, careful: bool = False) -> None:
        self.careful = careful

    def print(self, expr: sympy.Expr) -> tuple[str, int]:
        if expr in NON_FINITE:
            return NON_FINITE[expr], POWER
        if expr.is_Number:
            return _number(expr)
        if expr in CONSTANT_OPERANDS:
            return CONSTANT_OPERANDS[expr], ATOM
        if _protected_base(expr) is not None:
            return self._protected_power(_protected_base(expr), sympy.Integer(1))
        if expr.is_Add:
            return self._sum(expr)
        if expr.is_Mul:
            return self._product(expr)
        if expr.is_Pow:
            return self._power(expr.base, expr.exp)
        if isinstance(expr, sympy.Symbol):
            entry = NODE_ENTRIES.get(expr)
            if entry is None:
                raise _unmapped(expr)
            return entry.name, ATOM
        entry = NODE_ENTRIES.get(expr.func)
        if entry is None:
            raise _unmapped(expr)
        return self._call(entry, expr)

    def arg(self, expr: sympy.Expr, needed: int) -> str:
        text, strength = self.print(expr)
        return _wrap(text, strength, needed)

    def _call(self, entry, expr: sympy.Expr) -> tuple[str, int]:
        args = list(expr.args[: entry.arity])
        if expr.func in ABS_WRAPPED:
            args = [_unabs(args[0])]
        texts = [self.print(a)[0] for a in args]
        params = expr.args[entry.arity: entry.arity + len(entry.params)]  # drop's draw label k is not DSL
        values = [(param, value) for param, value in zip(entry.params, params)]
        while values and values[-1][0].default is not None and values[-1][1] == sympy.Rational(
                str(values[-1][0].default)):
            values.pop()  # cd(1/2) is plain cd
        texts += [self.print(value)[0] for _, value in values]
        if entry.arity == 0 and not texts:
            return entry.name, ATOM
        return f"{entry.name}({', '.join(texts)})", ATOM

    def _sum(self, expr: sympy.Expr) -> tuple[str, int]:
        terms = list(expr.as_ordered_terms())
        positive = [t for t in terms if not _negative(t)]
        if positive and _negative(terms[0]):  # sign(m) - v reads better than -v + sign(m)
            terms.remove(positive[0])
            terms.insert(0, positive[0])
        parts = []
        for i, term in enumerate(terms):
            if _negative(term):
                parts.append(("-" if i == 0 else " - ") + self.arg(-term, PRODUCT))
            else:
                parts.append(("" if i == 0 else " + ") + self.arg(term, PRODUCT))
        return "".join(parts), SUM

    def _product(self, expr: sympy.Expr) -> tuple[str, int]:
        coeff, rest = expr.as_coeff_Mul()
        factors = sympy.Mul.make_args(rest)
        printed = self._assemble(coeff, factors, [])
        roots = [f for f in factors if _is_root(f)]
        if len(roots) > 1:
            # SymPy splits sqrt|a b| into sqrt|a| sqrt|b| and sqrt(1e-3) into sqrt(10)/100; the joint root
            # is shorter, and in some nestings the only spelling that re-parses: sqrt(v/log(v)).
            radicand = sympy.Mul(coeff**2, *(_unabs(f.base) if 2 * f.exp == 1 else f.base ** (2 * f.exp)
                                             for f in roots))
            joint = (f"{SQRT}({self.print(radicand)[0]})", ATOM)
            folded = self._assemble(sympy.sign(coeff), [f for f in factors if not _is_root(f)], [joint])
            if (len(folded[0]) < len(printed[0]) or self.careful and not _same(printed[0], expr)) \
                    and _same(folded[0], expr):
                return folded
        return printed

    def _assemble(self, coeff: sympy.Number, factors: Sequence[sympy.Expr],
                  printed: list[tuple[str, int]]) -> tuple[str, int]:
        """coeff * factors (and factors already printed) as text: named operands, then factors in SymPy's
        order with sums last, then divisions by protected denominators."""
        # (base, exponent) per factor; SymPy may keep two powers of one base apart (|g|^(1/2) * |g|).
        powers = [[f, sympy.Integer(1)] if isinstance(f, sympy.exp) else list(f.as_base_exp())
                  for f in factors]  # exp(x) prints as a call, not as e^x
        items = list(printed)
        for name, pattern in PRODUCT_OPERANDS:
            k = _times_contained(pattern, powers)
            if k:
                for power in powers:
                    power[1] -= k * pattern.get(power[0], 0)
                items.append((name, ATOM) if k == 1 else (f"{name}^{k}", POWER))
        divisors: list[str] = []
        for base, exponent in _merge_roots(powers):
            inner = _protected_base(base)
            if base is _ROOT:  # exponent is (X, n): sqrt|X^n|, which SymPy splits into |X|^k sqrt|X|
                items.append((f"{SQRT}({self.arg(exponent[0], ATOM)}^{exponent[1]})", ATOM))
            elif exponent == 0:
                continue
            elif inner is not None and exponent.is_Integer and -MAX_REPEATED_DIVISIONS <= exponent < 0:
                divisors += [self.arg(inner, POWER)] * int(-exponent)
            else:
                items.append(self.print(base) if exponent == 1 else self._power(base, exponent))
        items.sort(key=lambda item: item[1] == SUM)  # stable: sums last
        text = "*".join(_wrap(t, strength, POWER) for t, strength in items) + "".join(f"/{d}" for d in divisors)
        number = _number(abs(coeff))[0]
        if not items:
            text = ("-" if coeff < 0 else "") + number + text
            return text, (NEGATION if coeff < 0 else _number(abs(coeff))[1]) if not divisors else PRODUCT
        if items[0][1] == SUM and abs(coeff) != 1 or items[0][1] == SUM and coeff < 0:
            # A number times a sum distributes (2*(a + b) = 2a + 2b): the number goes last, where the
            # product is no longer a single sum.
            return f"{text}*{'-' if coeff < 0 else ''}{number}", PRODUCT
        if abs(coeff) != 1:
            text = f"{number}*{text}"
        single = len(items) == 1 and not divisors and abs(coeff) == 1
        strength = items[0][1] if single else PRODUCT
        if coeff < 0:
            return "-" + _wrap(text, strength, PRODUCT), NEGATION if single else PRODUCT
        return text, strength

    def _exponent(self, exponent: sympy.Expr) -> str:
        """An exponent bare when it is an atom or a negative literal (g^-1), else in parentheses."""
        text, strength = self.print(exponent)
        if strength == ATOM or (exponent.is_Number and exponent < 0 and _number(-exponent)[1] == ATOM):
            return text
        return f"({text})"

    def _protected_power(self, inner: sympy.Expr, exponent: sympy.Expr) -> tuple[str, int]:
        """(inner + delta)^exponent as (1/inner)^-exponent: SymPy folds the two powers into one."""
        reciprocal = f"1/{self.arg(inner, POWER)}"
        if exponent == -1:
            return reciprocal, PRODUCT
        return f"({reciprocal})^{self._exponent(-exponent)}", POWER

    def _power(self, base: sympy.Expr, exponent: sympy.Expr) -> tuple[str, int]:
        inner = _protected_base(base)
        if inner is not None:
            return self._protected_power(inner, exponent)
        if isinstance(base, sympy.Abs) and exponent.is_negative and _protected_base(base.args[0]) is not None:
            reciprocal = f"{ABS}(1/{self.arg(_protected_base(base.args[0]), POWER)})"
            if exponent == -1:
                return reciprocal, ATOM
            return f"{reciprocal}^{self._exponent(-exponent)}", POWER
        if abs(exponent) == sympy.Rational(1, 2) and (isinstance(base, sympy.Abs) or base.is_nonnegative):
            root = f"{SQRT}({self.print(_unabs(base))[0]})"
            return (root, ATOM) if exponent > 0 else (f"{root}^-1", POWER)
        return f"{self.arg(base, ATOM)}^{self._exponent(exponent)}", POWER


def _is_root(factor: sympy.Expr) -> bool:
    """x^e with 0 < |e| < 1 and x = |y|, x >= 0 or x = y + delta: a factor one sqrt can take in."""
    return (factor.is_Pow and factor.exp.is_Rational and -1 < factor.exp < 1
            and (isinstance(factor.base, sympy.Abs) or bool(factor.base.is_nonnegative)
                 or _protected_base(factor.base) is not None))


def _negative(term: sympy.Expr) -> bool:
    coeff, _ = term.as_coeff_Mul()
    return bool(coeff.is_negative)


_ROOT = sympy.Symbol("_root")  # marks a merged sqrt|X^n| among a product's factors


def _merge_roots(powers: list[list[sympy.Expr]]) -> list[tuple[sympy.Expr, sympy.Expr]]:
    """Factors in SymPy's printing order, with |X|^(1/2) * |X|^k (SymPy's form of sqrt|X^(2k+1)|) merged
    into one (_ROOT, (X, 2k + 1))."""
    ordered = sorted(powers, key=lambda p: sympy.default_sort_key(p[0]))
    out: list[tuple[sympy.Expr, sympy.Expr]] = []
    for base, exponent in ordered:
        same = [e for b, e in ordered if b == base]
        if len(same) > 1 and isinstance(base, sympy.Abs):
            total = sum(same)
            if (2 * total).is_Integer and (2 * total) % 2 == 1 and total > 1:
                if (_ROOT, (base.args[0], 2 * total)) not in out:
                    out.append((_ROOT, (base.args[0], 2 * total)))
                continue
        out.append((base, exponent))
    return out


def _times_contained(pattern: dict[sympy.Expr, sympy.Expr], powers: list[list[sympy.Expr]]) -> int:
    """The largest k >= 0 such that the factors hold pattern^k (one factor per base, integer exponents
    of the pattern's signs)."""
    k = None
    for base, exponent in pattern.items():
        have = [p[1] for p in powers if p[0] == base]
        if len(have) != 1 or not (have[0].is_Integer and exponent.is_Integer) or have[0] * exponent <= 0:
            return 0
        fits = int(have[0] // exponent)
        k = fits if k is None else min(k, fits)
    return k or 0


# --- public -----------------------------------------------------------------------------------------

def _reparses(text: str, target: str) -> bool:
    try:
        return canonical_text(canonical_form(parse_expr(text))) == target
    except RuleError:
        return False


def _same(text: str, expr: sympy.Expr) -> bool:
    """Whether text re-parses to expr (draw labels aside)."""
    return _reparses(text, canonical_text(canonical_form(expr)))


@lru_cache(maxsize=65536)
def _print_canonical(canonical: sympy.Expr) -> str:
    target = canonical_text(canonical)
    named = _named_rules().get(target)
    if named is not None:
        return named
    text, _ = _Printer().print(canonical)
    if _reparses(text, target):
        return text
    text, _ = _Printer(careful=True).print(canonical)
    if not _reparses(text, target):
        raise DslError(f"the DSL text {text!r} does not re-parse to {target}; give the rule's own text")
    return text


_NON_FINITE_NUMBERS = (sympy.oo, -sympy.oo, sympy.zoo, sympy.nan)
MAX_INFLATION = 8  # characters a printed rule may run past the rule's own spelling


def to_dsl(rule_or_expr: Rule | sympy.Expr) -> str:
    """The shortest readable DSL text of a rule (or of a SymPy expression built by the parser), in the
    registry's names; `parse_rule(to_dsl(rule)).key == rule.key`.

    >>> to_dsl(parse_rule("(m / sqrt(v)) + (1e-4*w)"))
    'adam + 1e-4*w'

    A Rule whose canonical form has no such spelling prints as its own text (stripped); a bare
    expression raises DslError.
    """
    if isinstance(rule_or_expr, Rule):
        own = " ".join(rule_or_expr.text.split())
        if rule_or_expr.canonical.has(*_NON_FINITE_NUMBERS):  # 1e300^15 reads better than 0^-1
            return own
        try:
            printed = _print_canonical(rule_or_expr.canonical)
        except DslError:
            return own
        # The rule's own spelling parses to its key too: where the canonical form's spelling is much
        # longer (SymPy split a power, say), the rule's own is the better read.
        longer = len(printed.replace(" ", "")) - len(own.replace(" ", ""))
        return own if longer > MAX_INFLATION else printed
    if not isinstance(rule_or_expr, sympy.Expr):
        raise DslError(f"to_dsl takes a Rule or a SymPy expression, got {type(rule_or_expr).__name__}")
    return _print_canonical(canonical_form(rule_or_expr))


def dsl_text(text: str) -> str:
    """`to_dsl` of the rule spelt by `text` (e.g. a stored rule's sampled text); the text itself,
    stripped, when it does not parse."""
    from nos_symbolic.rule import parse_rule

    try:
        return to_dsl(parse_rule(text))
    except NosError:
        return text.strip()
