"""Rule text -> SymPy expression: input checks, the Lark parse, and the builder whose methods are the
semantics (each name is looked up in the registry). User text is only ever tokenised, never evaluated.

Any text up to MAX_LENGTH parses, or fails with a RuleError, in well under a second and without
exhausting Python's recursion:
  - The builder walks the parse tree with an explicit stack, and a run of + and - (or of *) becomes
    one n-ary SymPy node, so a sum of 800 terms is one flatten rather than 800 (which would cost n^2).
  - Exact constants stay bounded (see functions.py): every built node's numbers are checked, and one
    whose numerator or denominator outgrows MAX_EXACT_BITS becomes its float64 value (+-oo on
    overflow, as torch computes it); powers check before SymPy computes them (registry `_pow`).
  - A constant subexpression (no operand, schedule or draw; delta counts as its run-time 1e-8) of more
    than MAX_CONSTANT_NODES nodes, or a polynomial of degree above MAX_DEGREE in delta, is evaluated to
    its float64 value by the torch compiler, as the rule would compute it at run time: towers such as
    0.5^0.5^0.5^... otherwise send SymPy's assumptions on an exponential walk. Smaller constants
    (sqrt(2), exp(2), log(2), 1/2 = 1/(2 + delta)) stay exact, so the usual rules keep their keys.
  - SymPy decides the sign of a polynomial in one nonnegative symbol (v, ld) by isolating the real
    roots of its derivative: log((v+1)^200 - 2) takes 17 s, (v+1)*(v+2)*...*(v+16) - 2 over a second,
    and a degree-8 one with 1e300-sized coefficients a quarter of a second. Such a polynomial of degree
    above MAX_DEGREE, or of degree 2 or more with a number beyond MAX_COEFFICIENT_BITS, is refused (a
    RuleError), and so is one with a float coefficient (SymPy's polynomials over floats are slow to
    set up); the paper's space, three groups squaring at most once each, reaches degree 8 with
    small exact coefficients. Rational functions count the degree of their numerator over a common
    denominator, 1/(v + 1/(v + 1/(...))) included. A constant with delta that holds a float is
    folded to its value at once, for the same reason, and so is a constant SymPy cannot prove real
    ((-5)^(1/3) is 1/(3 + delta) away from an integer power): SymPy would carry it as a complex
    number and expand powers of it into real and imaginary parts, where torch computes NaN.
  - SymPy expands an integer power of a sum it cannot prove real, (g^(1/3) + m + 1)^n, into its
    multinomial terms to split real and imaginary parts (exp(...)^(1/3) asks for them): 153 terms take
    a second. Such a power is refused when its expansion would exceed MAX_EXPANSION_TERMS terms, before
    SymPy computes it. Powers of real sums ((g + m)^30, g/g/.../g = g/(g + delta)^19), products of
    sums and flat sums cost SymPy nothing of the kind and are not bounded here.
  - A tower of constants to symbolic powers, 0.5^(0.5^(...^g3)), costs SymPy seconds from about 16
    levels: more than MAX_TOWER levels are refused.
  - The rest of SymPy's work grows with the size of the expression, a millisecond or two a node: a
    rule whose SymPy tree exceeds MAX_NODES nodes is refused (a 4,096-character sum of 400 logs
    would take seconds). Runs of + and * are counted as they grow, so refusing is cheap.
  - SymPy's automatic simplification has more slow paths than the limits above name (towers of
    powers mixing huge constants and operands, say). As a last bound the builder stops, with a
    RuleError, once it has spent MAX_BUILD_SECONDS of CPU time: a hundred times what a rule of the
    paper's space needs, so only such monsters can meet it, but whether one just at the bound is
    refused depends on the machine.
  - The rule as written may nest at most MAX_DEPTH levels of calls, parentheses and powers (a run
    of + - * / is one level), and its SymPy expression at most MAX_SYMPY_DEPTH (log(x) is log|x|,
    x / y is x * (y + delta)^-1: a level written is up to three in SymPy): every later stage
    (canonical form, printing, LaTeX, the compiler, SymPy's own assumptions) recurses over it, using
    a few Python frames a level, and this depth keeps all of them well inside Python's default limit
    of 1000. A RecursionError inside SymPy all the same is a RuleError.
"""
from __future__ import annotations

import difflib
import gc
import itertools
import math
import time
from dataclasses import dataclass
from functools import lru_cache

import sympy
import torch
from lark import Token, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from grammar import load_parser
from nos_symbolic import functions as F
from nos_symbolic.compile import compile_expr
from nos_symbolic.errors import RuleError
from nos_symbolic.numbers import compact
from nos_symbolic.registry import DECAYS, NAMED_RULES, REGISTRY, Primitive, named_rule_text

MAX_LENGTH = 4096  # characters; a 3-group rule of the paper's space is about 200
MAX_DEPTH = 64  # nesting of calls, parentheses and powers as written; see the module docstring
MAX_SYMPY_DEPTH = 2 * MAX_DEPTH  # nesting of the SymPy expression the rule becomes
MAX_LITERAL = 1e300  # literals beyond float range are refused rather than turned into huge integers
MAX_CONSTANT_NODES = 16  # a constant subexpression larger than this is evaluated to a float
MAX_DEGREE = 8  # of a polynomial in one signed operand (v, ld) alone; see the module docstring
MAX_COEFFICIENT_BITS = 64  # of the numbers in such a polynomial of degree 2 or more
MAX_TOWER = 8  # nesting of c^(d^(...)) over operands; 0.5^(0.5^(...(g3))) 16 deep takes seconds
MAX_EXPANSION_TERMS = 24  # multinomial terms of a power of a sum SymPy cannot prove real: 0.3 s
MAX_BUILD_SECONDS = 0.5  # CPU time; a rule of the paper's space takes a few milliseconds
MAX_NODES = 160  # tree size of the SymPy expression; the paper's 3-group rules stay below 60

# Known bad inputs -> what to tell the user (lark's match_examples picks the closest parser state).
_SYNTAX_EXAMPLES: dict[str, list[str]] = {
    "an operand is missing after an operator": ["g +", "g *", "g ^", "-", "g + * m", "g / )", "g ** "],
    "two operands with no operator between them": ["g m", "g 2", "2 g", "(g)(m)", "g (m)", "2 exp(g)"],
    "unclosed parenthesis": ["(g", "exp(g", "((g)", "clip(g, 1e-3"],
    "unmatched closing parenthesis": ["g)", ")", "(g))"],
    "an argument is missing": ["clip(g,)", "clip(, g)", "exp(,)"],
    "an operator is missing its left operand": ["* g", "+ g", "^ g", "/ g"],
}


def check_text(text: str) -> None:
    """Refuse text the parser should never see: empty, too long, NUL bytes, non-ASCII, too deep."""
    if not isinstance(text, str):
        raise RuleError(f"a rule must be text, got {type(text).__name__}")
    if not text.strip():
        raise RuleError("empty rule: write an update such as 'exp(sign(g) * sign(m)) * g'")
    if len(text) > MAX_LENGTH:
        raise RuleError(f"rule too long ({len(text)} characters; the limit is {MAX_LENGTH})")
    for i, ch in enumerate(text):
        if ch == "\0":
            raise RuleError("NUL byte in rule", *_position(text, i))
        if ord(ch) > 127:
            raise RuleError(f"non-ASCII character {ch!r} in rule (the DSL is ASCII)", *_position(text, i))
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth > MAX_DEPTH:
            raise RuleError(f"rule nested too deeply: more than {MAX_DEPTH} levels of parentheses",
                            *_position(text, i))


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def parse_tree(text: str) -> Tree:
    """The Lark parse tree of checked text, or a RuleError naming the problem and its column."""
    check_text(text)
    parser = load_parser()
    try:
        tree = parser.parse(text)
    except UnexpectedCharacters as err:
        raise RuleError(f"unexpected character {text[err.pos_in_stream]!r}", err.line, err.column) from None
    except UnexpectedInput as err:
        label = _stray_comma(text, err) or err.match_examples(parser.parse, _SYNTAX_EXAMPLES, use_accepts=True)
        if label is None:
            label = "unexpected end of rule" if isinstance(err, UnexpectedEOF) else "syntax error"
            token = getattr(err, "token", None)
            if token is not None and getattr(token, "type", "") != "$END":
                label = f"unexpected {str(token)!r}"
        line, column = err.line, err.column
        if isinstance(err, UnexpectedEOF) or line is None or line < 1:
            line, column = _position(text, len(text))
        raise RuleError(label, line, column) from None
    return tree


def _stray_comma(text: str, err: UnexpectedInput) -> str | None:
    """The message for a ',' outside any call's parentheses (`g,`), which no function's arguments explain."""
    token = getattr(err, "token", None)
    if token is None or str(token) != ",":
        return None
    before = text[: token.start_pos]
    if before.count("(") > before.count(")"):
        return None
    return "unexpected ',' (a comma only separates a function's arguments)"


@dataclass(frozen=True)
class _Facts:
    """What the builder tracks per SymPy node: the bits of its largest exact number; whether it is a
    fixed number at run time (no operand, schedule or draw; delta is a fixed 1e-8); its tree size and
    depth; its free symbols; and its degree as a polynomial in them (None when it is not one)."""

    bits: int
    constant: bool
    size: int
    depth: int
    symbols: frozenset
    degree: int | None  # of the numerator once put over a common denominator, for a rational function
    inexact: bool  # holds a Float
    fraction: bool  # holds a negative power of a symbolic base
    real: bool  # real (or +-oo) for every value of the operands, as SymPy can see at once
    nonnegative: bool  # and never negative
    sum_terms: int  # the most terms of a sum inside that SymPy cannot prove real (0: none)
    sum_power: int  # the largest integer power such a sum is raised to (1: the sum itself)
    tower: int  # nesting of constants to symbolic powers, c^(d^(... g))

    def expansion(self, power: int = 1) -> int:
        """Terms of the multinomial expansion of (a non-real sum inside)^(sum_power * power), the work
        SymPy does to split it into real and imaginary parts (0 when there is nothing to expand)."""
        return expansion_terms(self.sum_terms, self.sum_power * power)


def expansion_terms(terms: int, power: int) -> int:
    """Terms of (t_1 + ... + t_terms)^power multiplied out: C(power + terms - 1, terms - 1); 0 for a
    power below 2, and just past MAX_EXPANSION_TERMS when the power alone exceeds it."""
    if power < 2 or terms < 2:
        return 0
    if power > MAX_EXPANSION_TERMS:
        return MAX_EXPANSION_TERMS + 1
    return math.comb(power + terms - 1, terms - 1)


_VARYING = (F.Drop, F.CosineDecay, F.RestartDecay)  # nodes whose value is not fixed
_NONNEGATIVE_FUNCTIONS = (sympy.Abs, sympy.exp, F.CosineDecay, F.RestartDecay)


class _FactBook:
    """_Facts of every node met in one parse, computed once each without recursion."""

    def __init__(self) -> None:
        self._facts: dict[sympy.Basic, _Facts] = {}

    def __call__(self, expr: sympy.Basic) -> _Facts:
        return F.fold_up(expr, self._combine, self._facts)

    @staticmethod
    def _combine(node: sympy.Basic, kids: list[_Facts]) -> _Facts:
        bits = max([F.number_bits(node) if node.is_Number else 0] + [k.bits for k in kids])
        size = 1 + sum(k.size for k in kids)
        depth = 1 + max((k.depth for k in kids), default=0)
        if node.is_Symbol:
            return _Facts(bits, node is F.delta, size, depth, frozenset([node]), 1, False, False,
                          node.is_real is True, node.is_nonnegative is True, 0, 0, 0)
        constant = not isinstance(node, _VARYING) and all(k.constant for k in kids)
        symbols = frozenset().union(*(k.symbols for k in kids))
        degree = _degree(node, kids, symbols)
        inexact = node.is_Float or any(k.inexact for k in kids)
        fraction = any(k.fraction for k in kids) or (
            isinstance(node, sympy.Pow) and bool(kids[0].symbols) and node.exp.is_negative is True)
        real, nonnegative = _sign_facts(node, kids)
        sum_terms = max((k.sum_terms for k in kids), default=0)
        sum_power = max((k.sum_power for k in kids), default=0)
        if isinstance(node, sympy.Add) and symbols and not real:
            sum_terms, sum_power = max(sum_terms, len(node.args)), max(sum_power, 1)
        elif isinstance(node, sympy.Pow) and node.exp.is_Integer:
            sum_power = kids[0].sum_power * abs(int(node.exp))
        tower = max((k.tower for k in kids), default=0)
        if isinstance(node, sympy.Pow) and kids[1].symbols and not kids[0].symbols:
            tower += 1
        return _Facts(bits, constant, size, depth, symbols, degree, inexact, fraction, real, nonnegative,
                      sum_terms, sum_power, tower)

    def big_numbers(self, expr: sympy.Basic) -> set[sympy.Expr]:
        """The numbers in expr beyond MAX_EXACT_BITS (subtrees without one are not entered)."""
        found, stack = set(), [expr]
        while stack:
            node = stack.pop()
            if self(node).bits <= F.MAX_EXACT_BITS:
                continue
            if node.is_Number:
                found.add(node)
            stack.extend(node.args)
        return found


def _degree(node: sympy.Basic, kids: list[_Facts], symbols: frozenset) -> int | None:
    """node's degree as a polynomial in its symbols (of the numerator over a common denominator)."""
    degrees = [k.degree for k in kids]
    if not symbols:
        return 0
    if None in degrees:
        return None
    if isinstance(node, sympy.Add):  # over a common denominator the degrees of fractions add up
        return sum(degrees) if any(k.fraction for k in kids) else max(degrees)
    if isinstance(node, sympy.Mul):
        return sum(degrees)
    if isinstance(node, sympy.Pow) and node.exp.is_Integer:  # a negative power is a denominator's
        return degrees[0] * abs(int(node.exp))
    return None


def _sign_facts(node: sympy.Basic, kids: list[_Facts]) -> tuple[bool, bool]:
    """(real, nonnegative) of node from its children's, as far as the structure shows (never asks
    SymPy, whose own questions are what the bounds keep cheap); False where unsure."""
    if node.is_Number:
        return node.is_extended_real is True, node.is_extended_nonnegative is True
    real = all(k.real for k in kids)
    if isinstance(node, sympy.Pow):
        base, exponent = kids
        if node.exp.is_Integer:
            return base.real, base.real and (base.nonnegative or int(node.exp) % 2 == 0)
        return base.nonnegative and exponent.real, base.nonnegative and exponent.real
    if isinstance(node, sympy.Abs):
        return True, True
    if isinstance(node, (sympy.Add, sympy.Mul)):
        nonnegative = all(k.nonnegative for k in kids) and (isinstance(node, sympy.Add) or real)
        return real, real and nonnegative
    return real, real and isinstance(node, _NONNEGATIVE_FUNCTIONS)


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


class _ConstantEnv:
    """The Env (see compile.py) of a constant subexpression, which reads no operand, step or draw."""

    t = 1.0
    T = 1.0

    def tensor(self, name: str) -> torch.Tensor:
        return torch.zeros(1, dtype=torch.float64)


@dataclass
class _Chain:
    """The operands of a run of + and - (op "add") or of * (op "mul"), built as one n-ary node.

    A product keeps its numeric coefficient apart, folded (and bounded) factor by factor."""

    op: str
    terms: list[sympy.Expr]
    coefficient: sympy.Expr = sympy.S.One
    size: int = 1  # tree size of the node it will be


class _Builder:
    """The semantics of the grammar: each method builds SymPy through the registry.

    `build` walks the tree bottom-up with an explicit stack; every node it builds goes through
    `_checked`, which bounds its numbers, folds a large constant and refuses a node too deep, too large
    or too costly for SymPy (see the module docstring)."""

    def __init__(self) -> None:
        self._draws = itertools.count()
        self._facts = _FactBook()
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
    def _check_expansion(facts: _Facts, power: int = 1) -> None:
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
            value = compile_expr(expr)(_ConstantEnv())
            expr = F.float_number(float(value[0]))
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
        # torch takes a parameter as a Python scalar: an integer past float64's exact range is a float
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
    return parse_expr(named_rule_text(name, decay))


def parse_expr(text: str) -> sympy.Expr:
    """Parse DSL text into a SymPy expression (SymPy's automatic simplification applied)."""
    tree = parse_tree(text)
    # No garbage collection while building: a full collection of SymPy's caches can take half a
    # second, and the builder's CPU-time bound (MAX_BUILD_SECONDS) must measure the rule, not that.
    collecting = gc.isenabled()
    gc.disable()
    try:
        expr = _Builder().build(tree)
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
