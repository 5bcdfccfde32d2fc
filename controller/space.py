"""The search space: token sequences of 5-token groups <-> DSL text.

A rule of `n_groups` groups is a sequence of 5 * n_groups tokens. Group i is (op1, op2, u1, u2, b) and
computes b(u1(op1), u2(op2)); its result joins the operand bank, so groups after it may pick it as an
operand; the last group's result is the update (Bello et al. 2017, section 2).

Each token is an index into the vocabulary of its position's kind:

    operand: the base operands, then one slot per earlier group's result ("@0", "@1", ...)
    unary:   unary templates such as "exp({x})"; "{x}" is the identity
    binary:  binary templates such as "{x} + {y}" or "keep({x}, {y})"

At group i the operand slots of groups i, i+1, ... are not computed yet and are masked out. That is the
only constraint: valid tokens depend on the position alone, never on earlier tokens, so every position
has a fixed mask, uniform sampling is independent per position, and a mutation touches one position.
A group whose result is never used is dead code; its rule equals a shorter one and deduplication of the
rendered rule catches it, so the space does not forbid it (the paper does not either). `live_positions`
tells the tokens that reach the update from the dead ones, so a mutation can skip the dead.

Rendering inlines each group's result where it is used, in parentheses unless it is an atom, so the text
parses with the grammar's precedence into exactly the tree the tokens describe. A result used twice is
written twice, so a `drop` inside it draws independently at each use.

Text -> tokens is `tokens_from_text`, the inverse of `render` on rendered text: for every token sequence t,
`render(tokens_from_text(render(t))) == render(t)`. Different sequences can render the same text (a dead
group leaves no trace; operand "sign(g)" with the identity equals operand "g" under unary "sign"), so
`tokens_from_text` returns the canonical one: operand snippets before unary calls, the used groups first
in dependency order, dead groups filled with token 0. On canonical sequences it is the exact inverse.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, NamedTuple, Sequence, Union

import numpy as np
import torch
from lark import Tree

from nos_symbolic.errors import NosError
from nos_symbolic.parse import parse_expr, parse_tree
from nos_symbolic.registry import PRIMITIVES, SEARCH_CONSTANTS
from nos_symbolic.rule import operands_of


def _snippets(*kinds: str) -> tuple[str, ...]:
    return tuple(s for p in PRIMITIVES if p.kind in kinds for s in p.search)


# The paper's vocabulary, read from the registry: 21 operands (with the constants 1 and 2), 12 unary
# functions and 6 binary functions. `abs` and `e` have no search snippet and stay out.
DEFAULT_OPERANDS: tuple[str, ...] = _snippets("operand", "schedule") + SEARCH_CONSTANTS
DEFAULT_UNARY: tuple[str, ...] = _snippets("unary")
DEFAULT_BINARY: tuple[str, ...] = _snippets("binary")

KINDS = ("operand", "unary", "binary")
GROUP = ("operand", "operand", "unary", "unary", "binary")  # the kinds of one group's 5 positions
GROUP_SIZE = len(GROUP)

Rng = Union[np.random.Generator, torch.Generator]

_ATOM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_HOLE = {"x": "__x__", "y": "__y__"}  # placeholder names that parse as plain NAMEs


class Position(NamedTuple):
    """One position of a token sequence: its index, its group, its slot in the group (0-4), its kind."""

    index: int
    group: int
    slot: int
    kind: str


@dataclass(frozen=True)
class SearchSpace:
    """Rules of `n_groups` groups of (op1, op2, u1, u2, b) over the given vocabulary.

    >>> space = SearchSpace()
    >>> space.render([5, 0, 0, 0, 2] * 3)   # [sign(m), g, id, id, *] three times; the last group is the rule
    'sign(m) * g'
    """

    n_groups: int = 3
    operands: tuple[str, ...] = DEFAULT_OPERANDS
    unary: tuple[str, ...] = DEFAULT_UNARY
    binary: tuple[str, ...] = DEFAULT_BINARY

    def __post_init__(self) -> None:
        for name in ("operands", "unary", "binary"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not isinstance(self.n_groups, int) or self.n_groups < 1:
            raise NosError(f"n_groups must be a positive integer, got {self.n_groups!r}")
        for name, holes in (("operands", ()), ("unary", ("x",)), ("binary", ("x", "y"))):
            _check_vocabulary(name, getattr(self, name), holes)

    # --- positions and masks ---

    @property
    def n_positions(self) -> int:
        return GROUP_SIZE * self.n_groups

    @cached_property
    def positions(self) -> tuple[Position, ...]:
        return tuple(Position(i, i // GROUP_SIZE, i % GROUP_SIZE, GROUP[i % GROUP_SIZE])
                     for i in range(self.n_positions))

    def vocabulary(self, kind: str) -> tuple[str, ...]:
        """The tokens of one kind; operand slots "@i" stand for the result of group i."""
        if kind == "operand":
            return self.operands + tuple(f"@{i}" for i in range(self.n_groups - 1))
        if kind == "unary":
            return self.unary
        if kind == "binary":
            return self.binary
        raise NosError(f"unknown token kind {kind!r}; expected one of {', '.join(KINDS)}")

    def vocab_size(self, kind: str) -> int:
        return len(self.vocabulary(kind))

    def choices(self, position: int) -> int:
        """The vocabulary size of the position's kind (the width of its mask and of the policy's head)."""
        return self.vocab_size(self.positions[position].kind)

    def n_valid(self, position: int) -> int:
        """How many tokens are valid here: valid tokens are always 0 .. n_valid - 1."""
        pos = self.positions[position]
        if pos.kind == "operand":
            return len(self.operands) + pos.group  # base operands, then results of groups 0 .. group-1
        return self.choices(position)

    def mask(self, position: int) -> torch.Tensor:
        """BoolTensor[choices(position)]: True where a token is valid at this position."""
        return torch.arange(self.choices(position)) < self.n_valid(position)

    def size(self) -> int:
        """The number of valid token sequences (7.3e16 for the default space)."""
        return math.prod(self.n_valid(p) for p in range(self.n_positions))

    def check(self, tokens: Sequence[int]) -> list[int]:
        """The tokens as a list of ints, or a NosError naming the first invalid position."""
        tokens = [int(t) for t in tokens]
        if len(tokens) != self.n_positions:
            raise NosError(f"expected {self.n_positions} tokens ({self.n_groups} groups of {GROUP_SIZE}), "
                           f"got {len(tokens)}")
        for pos, token in zip(self.positions, tokens):
            if not 0 <= token < self.n_valid(pos.index):
                raise NosError(f"token {token} is not valid at position {pos.index} "
                               f"(group {pos.group}, {pos.kind}; valid: 0 to {self.n_valid(pos.index) - 1})")
        return tokens

    # --- sampling ---

    def sample_uniform(self, rng: Rng) -> list[int]:
        """A token sequence with every position drawn uniformly from its valid tokens."""
        return [_randint(rng, self.n_valid(p)) for p in range(self.n_positions)]

    def mutate(self, tokens: Sequence[int], rng: Rng, positions: Sequence[int] | None = None) -> list[int]:
        """A copy with exactly one position resampled to a different valid token; the position is drawn
        uniformly from `positions` (default: all). Masks do not depend on earlier tokens, so the other
        positions stay valid as they are."""
        child = self.check(tokens)
        candidates = range(self.n_positions) if positions is None else positions
        candidates = [p for p in candidates if self.n_valid(p) > 1]  # a single valid token cannot change
        if not candidates:
            raise NosError("nothing to mutate: every given position has a single valid token")
        position = candidates[_randint(rng, len(candidates))]
        new = _randint(rng, self.n_valid(position) - 1)
        child[position] = new + (new >= child[position])  # skip the current token
        return child

    # --- live code ---

    def live_positions(self, tokens: Sequence[int]) -> list[int]:
        """The positions whose token reaches the update, in order: the rest are dead code.

        Dependencies are tracked backwards from the last group, as Lion's program search removes
        redundant statements: a group is live when a live operand slot reads its result; in a live group
        the binary token is live, a hole the binary discards (the y of keep(x, y)) kills its unary and
        operand tokens, and a unary that discards its argument kills the operand token. Changing a dead
        token leaves the rendered rule as it is.

        >>> SearchSpace(n_groups=2).live_positions([1, 4, 0, 5, 2, 21, 0, 2, 0, 5])  # keep(exp(@0), g)
        [0, 1, 2, 3, 4, 5, 7, 9]
        """
        tokens = self.check(tokens)
        n_base = len(self.operands)
        live_groups = {self.n_groups - 1}
        live: list[int] = []
        for group in reversed(range(self.n_groups)):
            if group not in live_groups:
                continue
            start = group * GROUP_SIZE
            *_, b = tokens[start:start + GROUP_SIZE]
            live.append(start + 4)
            for hole in (0, 1):  # op1 with u1 fill {x}, op2 with u2 fill {y}
                if not self._binary_reads[b][hole]:
                    continue
                op_pos, u_pos = start + hole, start + 2 + hole
                live.append(u_pos)
                if self._unary_reads[tokens[u_pos]]:
                    live.append(op_pos)
                    if tokens[op_pos] >= n_base:
                        live_groups.add(tokens[op_pos] - n_base)
        return sorted(live)

    @cached_property
    def _unary_reads(self) -> tuple[bool, ...]:
        """For each unary template: whether its value depends on {x}."""
        return tuple("g" in operands_of(parse_expr(_fill(t, x="g"))) for t in self.unary)

    @cached_property
    def _binary_reads(self) -> tuple[tuple[bool, bool], ...]:
        """For each binary template: whether its value depends on {x} and on {y}."""
        reads = []
        for template in self.binary:
            operands = operands_of(parse_expr(_fill(template, x="g", y="m")))
            reads.append(("g" in operands, "m" in operands))
        return tuple(reads)

    # --- tokens -> text ---

    def render(self, tokens: Sequence[int]) -> str:
        """The DSL text of a token sequence.

        >>> SearchSpace(n_groups=2).render([1, 4, 0, 5, 2, 21, 0, 2, 0, 2])  # exp(sign(g) * sign(m)) * g
        'exp(sign(g) * sign(m)) * g'
        """
        tokens = self.check(tokens)
        results: list[str] = []
        for start in range(0, self.n_positions, GROUP_SIZE):
            op1, op2, u1, u2, b = tokens[start:start + GROUP_SIZE]
            x = _fill(self.unary[u1], x=self._operand_text(op1, results))
            y = _fill(self.unary[u2], x=self._operand_text(op2, results))
            results.append(_fill(self.binary[b], x=x, y=y))
        return results[-1]

    def _operand_text(self, token: int, results: list[str]) -> str:
        n_base = len(self.operands)
        return self.operands[token] if token < n_base else results[token - n_base]

    # --- text -> tokens ---

    def tokens_from_text(self, text: str) -> list[int]:
        """The canonical token sequence whose rendering parses to the same tree as `text` (spacing and
        redundant parentheses aside, e.g. "sign(m)*g"), or a NosError if the space cannot express it."""
        tree = parse_tree(text)
        for root in self._groups(tree):
            tokens = self._flatten(root)
            if tokens is None:
                continue
            rendered = self.render(tokens)
            if rendered == text or parse_tree(rendered) == tree:
                return tokens
        raise NosError(f"{text!r} is not a rule of this search space (it is not the text of any "
                       f"{self.n_groups}-group token sequence)")

    @cached_property
    def _patterns(self) -> tuple[tuple[Tree, ...], tuple[Tree, ...], tuple[Tree, ...]]:
        """Parse trees of the operands and of the templates with placeholder holes."""
        return (tuple(parse_tree(s) for s in self.operands),
                tuple(parse_tree(_fill(t, **_HOLE)) for t in self.unary),
                tuple(parse_tree(_fill(t, **_HOLE)) for t in self.binary))

    def _groups(self, tree: Tree) -> Iterator[_Group]:
        """Every reading of `tree` as one group (lazily, in vocabulary order)."""
        for b, pattern in enumerate(self._patterns[2]):
            holes = _match(pattern, tree)
            if holes is not None:
                for u1, op1 in self._arguments(holes["x"]):
                    for u2, op2 in self._arguments(holes["y"]):
                        yield _Group(op1, op2, u1, u2, b)

    def _arguments(self, tree: Tree) -> Iterator[tuple[int, int | _Group]]:
        """Every reading of `tree` as unary(operand)."""
        for u, pattern in enumerate(self._patterns[1]):
            holes = _match(pattern, tree)
            if holes is not None:
                for operand in self._operands(holes["x"]):
                    yield u, operand

    def _operands(self, tree: Tree) -> Iterator[int | _Group]:
        """Every reading of `tree` as an operand: a base operand, else an earlier group's result."""
        for i, operand in enumerate(self._patterns[0]):
            if tree == operand:
                yield i
        yield from self._groups(tree)

    def _flatten(self, root: _Group) -> list[int] | None:
        """Tokens for a decoded tree: its groups in dependency order, dead groups as token 0, root last."""
        order: list[_Group] = []

        def visit(group: _Group) -> None:
            for operand in (group.op1, group.op2):
                if isinstance(operand, _Group) and operand not in order:
                    visit(operand)
                    order.append(operand)

        visit(root)
        if len(order) > self.n_groups - 1:
            return None
        slot = {group: len(self.operands) + i for i, group in enumerate(order)}
        tokens: list[int] = []
        for group in order:
            tokens += group.tokens(slot)
        tokens += [0] * GROUP_SIZE * (self.n_groups - 1 - len(order))
        return tokens + root.tokens(slot)


@dataclass(frozen=True)
class _Group:
    """One group read back from text; an operand is a base-operand token or the group it came from."""

    op1: int | _Group
    op2: int | _Group
    u1: int
    u2: int
    b: int

    def tokens(self, slot: dict[_Group, int]) -> list[int]:
        ops = [op if isinstance(op, int) else slot[op] for op in (self.op1, self.op2)]
        return ops + [self.u1, self.u2, self.b]


def _randint(rng: Rng, n: int) -> int:
    """A uniform integer in [0, n) from either kind of generator."""
    if isinstance(rng, torch.Generator):
        return int(torch.randint(n, (), generator=rng))
    return int(rng.integers(n))


def _is_atom(text: str) -> bool:
    """True for a name, a number, a call f(...) or a fully parenthesised (...): text that binds tightest."""
    if _ATOM.fullmatch(text):
        return True
    if not text.endswith(")"):
        return False
    depth = 0
    for i in range(len(text) - 1, -1, -1):  # find the "(" that the final ")" closes
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            head = text[:i]
            return head == "" or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", head) is not None
    return False


def _fill(template: str, **values: str) -> str:
    """Substitute {x} / {y}, in parentheses unless the value is an atom, the hole is the whole template,
    or the hole is a whole call argument (where the grammar reads any expression)."""
    text = template
    for name, value in values.items():
        hole = "{" + name + "}"
        whole_argument = re.search(r"[(,]\s*" + re.escape(hole) + r"\s*[,)]", template) is not None
        if not (_is_atom(value) or template == hole or whole_argument):
            value = f"({value})"
        text = text.replace(hole, value)
    return text


def _match(pattern: Tree, tree: Tree) -> dict[str, Tree] | None:
    """Bind the placeholder holes of `pattern` so that it equals `tree`, or None."""
    holes: dict[str, Tree] = {}

    def walk(p, t) -> bool:
        if isinstance(p, Tree) and p.data == "name" and str(p.children[0]) in _HOLE.values():
            name = str(p.children[0])[2]
            if name in holes:
                return holes[name] == t
            holes[name] = t
            return True
        if not isinstance(p, Tree) or not isinstance(t, Tree):
            return p == t
        return (p.data == t.data and len(p.children) == len(t.children)
                and all(walk(a, b) for a, b in zip(p.children, t.children)))

    return holes if walk(pattern, tree) else None


def _check_vocabulary(name: str, items: tuple[str, ...], holes: tuple[str, ...]) -> None:
    """Each item must be distinct DSL text with exactly the given holes, and parse once filled with g."""
    if not items:
        raise NosError(f"the search space needs at least one {name} entry")
    for item in items:
        if not isinstance(item, str):
            raise NosError(f"{name} entries are DSL text, got {item!r}")
        for hole in ("x", "y"):
            expected = 1 if hole in holes else 0
            if item.count("{" + hole + "}") != expected:
                raise NosError(f"{name} entry {item!r} must contain {{{hole}}} exactly {expected} time(s)")
        try:
            parse_expr(_fill(item, **{h: "g" for h in holes}))
        except NosError as err:
            raise NosError(f"{name} entry {item!r} is not valid DSL: {err}") from None
    duplicates = sorted({item for item in items if items.count(item) > 1})
    if duplicates:
        raise NosError(f"duplicate {name} entries: {', '.join(duplicates)}")


__all__ = ["DEFAULT_BINARY", "DEFAULT_OPERANDS", "DEFAULT_UNARY", "GROUP", "GROUP_SIZE", "KINDS",
           "Position", "SearchSpace"]
