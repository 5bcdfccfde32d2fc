"""Lark parse tree -> SymPy expression: the builder whose methods are the semantics of the grammar.

Each name is looked up in the registry, whose entries build the SymPy nodes. The builder walks the
tree with an explicit stack (any nesting fits Python's stack), makes a run of + and - (or of *) one
n-ary SymPy node (a sum of 800 terms is one flatten, not 800), and passes every node it builds through
`Builder._checked`, which applies the bounds of parse_limits.py. Unknown names get a did-you-mean.
"""
from __future__ import annotations

import difflib
import gc
import itertools
import time
from dataclasses import dataclass
from functools import lru_cache

import sympy
from lark import Token, Tree

from nos_symbolic import functions as F
from nos_symbolic.errors import RuleError
from nos_symbolic.numbers import compact
from nos_symbolic.numeric import constant_value
from nos_symbolic.parse_facts import FactBook, Facts
from nos_symbolic.parse_limits import (MAX_BUILD_SECONDS, MAX_COEFFICIENT_BITS, MAX_CONSTANT_NODES, MAX_DEGREE,
                                       MAX_DEPTH, MAX_EXPANSION_TERMS, MAX_LITERAL, MAX_NODES, MAX_SYMPY_DEPTH,
                                       MAX_TOWER)
from nos_symbolic.parse_syntax import parse_tree
from nos_symbolic.registry import DECAYS, NAMED_RULES, REGISTRY, Primitive, named_rule_text

_CHAINS = frozenset({"add", "sub", "mul", "div"})  # left-associative: a run of them is one level
_SIGNS = frozenset({"neg", "args"})  # a run of signs, or a call's argument list, adds no level


def _written_depth(node: Tree, kids: list[int]) -> int:
    """Nesting of node as the user wrote it: a call, a power or a parenthesised operand is one level
    more than what it holds; the left operand of + - * / continues the same run."""
    if node.data in _SIGNS or not kids:
        return max(kids, default=0)
    if node.data in _CHAINS:
        return max(kids[0], kids[-1] + 1)
    return 1 + max(kids)


@dataclass
class _Chain:
    """The operands of a run of + and - (op "add") or of * (op "mul"), built as one n-ary node.

    A product keeps its numeric coefficient apart, folded (and bounded) factor by factor."""

    op: str
    terms: list[sympy.Expr]
    coefficient: sympy.Expr = sympy.S.One
    size: int = 1  # tree size of the node it will be


class Builder:
    """The semantics of the grammar: each method builds SymPy through the registry.

    `build` walks the tree bottom-up with an explicit stack; every node it builds goes through
    `_checked`, which bounds its numbers, folds a large constant and refuses a node too deep, too large
    or too costly for SymPy (see parse_limits.py)."""

    def __init__(self) -> None:
        self._draws = itertools.count()
        self._facts = FactBook()
        # CPU time is a system call; the wall clock is not, and a thread's CPU time never runs ahead
        # of it, so CPU time is read only once the wall clock has passed the bound
        self._wall_deadline = time.perf_counter() + MAX_BUILD_SECONDS
        self._deadline = time.process_time() + MAX_BUILD_SECONDS

    def build(self, tree: Tree) -> sympy.Expr:
        values: list = []
        depths: list[int] = []
        stack: list[tuple[Tree | Token, bool]] = [(tree, False)]
        while stack:
            node, children_done = stack.pop()
            if isinstance(node, Token):
                values.append(node)
                depths.append(0)
            elif not children_done:
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(node.children))
            else:
                n = len(node.children)
                args = values[len(values) - n:]
                del values[len(values) - n:]
                depths.append(_written_depth(node, depths[len(depths) - n:]))
                del depths[len(depths) - n - 1:-1]
                if depths[-1] > MAX_DEPTH:
                    raise RuleError(f"rule nested too deeply: more than {MAX_DEPTH} levels of calls, "
                                    f"parentheses and powers")
                values.append(getattr(self, node.data)(*args))
        return self._expr(values[0])

    # --- leaves and calls ---

    def number(self, tok: Token) -> sympy.Expr:
        exact = sympy.Rational(str(tok))
        value = float(tok)
        if value > MAX_LITERAL:
            raise RuleError(f"number {str(tok)!r} is too large (the limit is {compact(MAX_LITERAL)})",
                            tok.line, tok.column)
        if exact != 0 and value < 1 / MAX_LITERAL:  # 1e-999 would silently be 0 in float64
            raise RuleError(f"number {str(tok)!r} is too small: a nonzero literal below {compact(1 / MAX_LITERAL)} "
                            f"is refused rather than rounded to 0; write 0 for zero", tok.line, tok.column)
        return F.bounded_number(exact)

    def name(self, tok: Token) -> sympy.Expr:
        name = str(tok)
        entry = REGISTRY.get(name)
        if entry is None:
            if name in NAMED_RULES:
                return _named_expr(name, None)
            raise _unknown(name, tok)
        if entry.kind in ("unary", "binary"):
            raise RuleError(f"{name!r} is a function: call it, e.g. {_signature(entry)}", tok.line, tok.column)
        return self._apply(entry, [], tok)

    def variant(self, tok: Token) -> sympy.Expr:
        base, decay = str(tok).rsplit("-", 1)
        if base in NAMED_RULES and base != "sgd":
            return _named_expr(base, decay)
        # Not a named rule: `g-cd` is the subtraction g - cd.
        left = self.name(Token("NAME", base, line=tok.line, column=tok.column))
        right = self.name(Token("NAME", decay, line=tok.line, column=tok.column + len(base) + 1))
        return self._checked(REGISTRY["sub"].build(left, right))

    def call(self, tok: Token, args: list | None = None) -> sympy.Expr:
        name = str(tok)
        entry = REGISTRY.get(name)
        if entry is None:
            if name in NAMED_RULES:
                raise RuleError(f"{name!r} is a named rule, not a function: write it alone", tok.line, tok.column)
            raise _unknown(name, tok)
        if entry.kind == "operand":
            raise RuleError(f"{name!r} is an operand, not a function: write it without parentheses",
                            tok.line, tok.column)
        return self._apply(entry, [self._expr(a) for a in args or []], tok)

    def args(self, *items) -> list:
        return list(items)

    # --- operators: a run of + and - (or of *) is one n-ary node, equal to the registry's binary
    # add, sub and mul applied left to right ---

    def add(self, x, y) -> _Chain:
        return self._extend(x, "add", self._expr(y))

    def sub(self, x, y) -> _Chain:
        return self._extend(x, "add", self._checked(REGISTRY["neg"].build(self._expr(y))))

    def mul(self, x, y) -> _Chain:
        return self._extend(x, "mul", self._expr(y))

    def div(self, x, y) -> sympy.Expr:
        return self._checked(REGISTRY["div"].build(self._expr(x), self._expr(y)))

    def pow(self, x, _op: Token, y) -> sympy.Expr:
        base, exponent = self._expr(x), self._expr(y)
        if exponent.is_Integer:  # refused before SymPy computes (g^(1/3) + m + ...)^n
            self._check_expansion(self._facts(base), abs(int(exponent)))
        return self._checked(REGISTRY["pow"].build(base, exponent))

    @staticmethod
    def _check_expansion(facts: Facts, power: int = 1) -> None:
        """Refuse expr^power, expr with these facts, when SymPy's expansion of a power of a sum it
        cannot prove real would exceed MAX_EXPANSION_TERMS terms."""
        terms = facts.expansion(power)
        if terms <= MAX_EXPANSION_TERMS:
            return
        total = facts.sum_power * power
        count = f"more than {MAX_EXPANSION_TERMS}" if total > MAX_EXPANSION_TERMS else str(terms)
        raise RuleError(f"rule too complex: a sum of {facts.sum_terms} terms that is not real for every input "
                        f"(it holds a fractional power of a signed operand) raised to the power {compact(total)}, "
                        f"which "
                        f"SymPy multiplies out into {count} terms (the limit is {MAX_EXPANSION_TERMS}); take "
                        f"abs() of the base or lower the power")

    def neg(self, x) -> sympy.Expr:
        return self._checked(REGISTRY["neg"].build(self._expr(x)))

    def _extend(self, chain, op: str, term: sympy.Expr) -> _Chain:
        if not (isinstance(chain, _Chain) and chain.op == op):
            chain = self._extend(_Chain(op, []), op, self._expr(chain))
        if op == "mul":
            coefficient, term = term.as_coeff_Mul()
            chain.coefficient = F.bounded_number(chain.coefficient * coefficient)
        chain.terms.append(term)
        chain.size += self._facts(term).size
        if chain.size > MAX_NODES:  # build it now: refused before more terms are built, or smaller
            built = self._expr(chain)
            chain = _Chain(op, [built], size=self._facts(built).size)
        return chain

    def _expr(self, value) -> sympy.Expr:
        """A built value as a SymPy expression (a pending chain is built now)."""
        if not isinstance(value, _Chain):
            return value
        if value.op == "add":
            return self._checked(sympy.Add(*value.terms))
        return self._checked(sympy.Mul(value.coefficient, *value.terms))

    def _checked(self, expr: sympy.Expr) -> sympy.Expr:
        facts = self._facts(expr)
        if facts.bits > F.MAX_EXACT_BITS:
            expr = expr.xreplace({n: F.as_float_number(n) for n in self._facts.big_numbers(expr)})
            facts = self._facts(expr)
        steep = facts.degree is not None and facts.degree > MAX_DEGREE
        if facts.constant and not expr.is_Number and (facts.size > MAX_CONSTANT_NODES or steep or facts.inexact
                                                      or expr.is_extended_real is not True):
            expr = F.float_number(constant_value(expr))
            facts = self._facts(expr)
        elif len(facts.symbols) == 1 and facts.degree is not None and facts.degree > 1:
            (symbol,) = facts.symbols
            if (symbol.is_nonnegative or symbol.is_nonpositive) and (
                    steep or facts.bits > MAX_COEFFICIENT_BITS or facts.inexact):
                raise RuleError(f"rule too complex: a polynomial in {symbol} alone of degree {facts.degree}, "
                                f"or with a float or a number of more than {MAX_COEFFICIENT_BITS} bits "
                                f"(the degree limit is {MAX_DEGREE})")
        self._check_expansion(facts)
        if facts.tower > MAX_TOWER:
            raise RuleError(f"rule too complex: constants to symbolic powers nested {facts.tower} deep "
                            f"(the limit is {MAX_TOWER})")
        if facts.size > MAX_NODES:
            raise RuleError(f"rule too large: more than {MAX_NODES} operations and operands after "
                            f"simplification; simplify it")
        if facts.depth > MAX_SYMPY_DEPTH:
            raise RuleError(f"rule nested too deeply once written out for SymPy: more than {MAX_SYMPY_DEPTH} "
                            f"levels (log(x) is log(abs(x)), x/y is x*(y + delta)^-1; the limit is "
                            f"{MAX_SYMPY_DEPTH}); nest fewer calls or divisions")
        if time.perf_counter() > self._wall_deadline and time.process_time() > self._deadline:
            raise RuleError(f"rule too complex: SymPy needs more than {MAX_BUILD_SECONDS} s of CPU time to "
                            f"simplify it; simplify it by hand")
        return expr

    def _apply(self, entry: Primitive, args: list[sympy.Expr], tok: Token) -> sympy.Expr:
        required = entry.arity + sum(p.default is None for p in entry.params)
        allowed = entry.arity + len(entry.params)
        if not required <= len(args) <= allowed:
            expected = str(required) if required == allowed else f"{required} to {allowed}"
            raise RuleError(f"{entry.name} takes {expected} argument{'s' * (allowed != 1)} "
                            f"({_signature(entry)}), got {len(args)}", tok.line, tok.column)
        values = args[: entry.arity]
        for param, arg in itertools.zip_longest(entry.params, args[entry.arity:]):
            values.append(self._param(entry, param, arg, tok))
        if entry.fresh_draw:
            values.append(next(self._draws))
        return self._checked(entry.build(*values))

    @staticmethod
    def _param(entry: Primitive, param, arg: sympy.Expr | None, tok: Token) -> sympy.Expr:
        if arg is None:
            return sympy.Rational(str(param.default))
        if arg.free_symbols == {F.delta}:  # x/0 is the protected division x/(0 + delta)
            raise RuleError(f"{entry.name}: {param.name} must be a finite number, got a division by zero",
                            tok.line, tok.column)
        if not (arg.is_Number and arg.is_finite and arg.is_real):
            raise RuleError(f"{entry.name}: {param.name} must be a finite number, got {compact(arg)}",
                            tok.line, tok.column)
        if not param.check(float(arg)):
            raise RuleError(f"{entry.name} needs {param.requirement}, got {param.name} = {compact(arg)}",
                            tok.line, tok.column)
        # the backends take a parameter as a Python scalar: an integer past float64's exact range is a float
        return sympy.Float(float(arg)) if arg.is_Integer and abs(arg) > _EXACT_FLOAT_INT else arg


_EXACT_FLOAT_INT = 2**53


def _signature(entry: Primitive) -> str:
    names = ["x", "y"][: entry.arity] + [p.name for p in entry.params]
    return f"{entry.name}({', '.join(names)})"


def _unknown(name: str, tok: Token) -> RuleError:
    known = sorted(set(REGISTRY) | set(NAMED_RULES))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known names: {', '.join(known)}"
    return RuleError(f"unknown name {name!r}{hint}", tok.line, tok.column)


@lru_cache(maxsize=None)
def _named_expr(name: str, decay: str | None) -> sympy.Expr:
    if decay is not None and decay not in DECAYS:
        raise RuleError(f"unknown decay {decay!r} for {name}; expected one of {', '.join(DECAYS)}")
    return build_expr(parse_tree(named_rule_text(name, decay)))


def build_expr(tree: Tree) -> sympy.Expr:
    """The SymPy expression of a parse tree (SymPy's automatic simplification applied), or a RuleError."""
    # No garbage collection while building: a full collection of SymPy's caches can take half a
    # second, and the builder's CPU-time bound (MAX_BUILD_SECONDS) must measure the rule, not that.
    collecting = gc.isenabled()
    gc.disable()
    try:
        expr = Builder().build(tree)
    except RuleError:
        raise
    except RecursionError:
        raise RuleError(f"rule too complex: SymPy's simplification of it nests too deeply; nest fewer calls "
                        f"(the limit is {MAX_DEPTH} levels, and less where SymPy rewrites each)") from None
    except (ArithmeticError, TypeError, ValueError, AssertionError) as err:
        # SymPy refusing a constant it cannot fold, or failing its own checks on a hostile expression
        raise RuleError(f"cannot build rule: SymPy cannot simplify it ({type(err).__name__}: {err})") from None
    finally:
        if collecting:
            gc.enable()
    if not isinstance(expr, sympy.Expr):
        raise RuleError("not an expression")
    return expr
