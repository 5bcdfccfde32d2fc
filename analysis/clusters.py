"""Clusters of rules outside the named families: by skeleton, then by tree edit distance.

1. Skeleton: the canonical tree without its positive constant factor in front (the learning rate
   absorbs it), every number replaced by C (or -C when negative, since the sign decides the direction)
   and every decay (ld, cd(n), rd(n)) by f. Arguments of + and * are ordered by their skeleton text, so
   the tree is ordered. Rules with equal skeletons always share a cluster.
2. Distance between skeleton trees: the Zhang-Shasha tree edit distance (insert, delete, relabel a node,
   unit costs) divided by the larger tree's node count, so it lies in [0, 1]. Two lower bounds skip most
   pairs cheaply: the size difference and unmatched labels (each costs an edit), then the string edit
   distance of the postorder label sequences.
3. Leader clustering, deterministic: skeleton groups are taken best first; each joins the nearest
   existing cluster whose leader (its first, hence best, group) lies within `threshold`, else it founds
   a new one. Cost: (groups x clusters) bounds, and exact distances only where the bounds allow.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import sympy

from analysis.named import is_constant
from nos_symbolic import functions as F

CLUSTER_THRESHOLD = 0.35  # about a third of the larger tree edited: one edit for 5 nodes, two for 6

_SLACK = 1e-9  # bounds only prune: a little slack keeps float rounding from pruning a tie
T = TypeVar("T")


@dataclass(frozen=True)
class Shape:
    """A skeleton tree: node labels in postorder with each node's leftmost leaf, as Zhang-Shasha uses."""

    text: str
    labels: tuple[str, ...]
    leftmost: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.labels)


def shape(expr: sympy.Expr) -> Shape:
    """The skeleton of an expression (see the module docstring)."""
    labels: list[str] = []
    leftmost: list[int] = []

    def lay_out(node: tuple[str, str, list]) -> int:  # postorder; returns the node's leftmost leaf
        firsts = [lay_out(kid) for kid in node[2]]
        labels.append(node[0])
        leftmost.append(firsts[0] if firsts else len(labels) - 1)
        return leftmost[-1]

    root = _node(_unscaled(expr))
    lay_out(root)
    return Shape(root[1], tuple(labels), tuple(leftmost))


def _node(e: sympy.Expr) -> tuple[str, str, list]:
    """(label, skeleton text, children) of a skeleton node."""
    if e == F.ld or isinstance(e, (F.CosineDecay, F.RestartDecay)):
        return "f", "f", []
    if e.is_Number or e.is_NumberSymbol:
        label = "-C" if e.is_negative else "C"
        return label, label, []
    if e.is_Symbol:
        return e.name, e.name, []
    kids = [_node(a) for a in e.args]
    if e.is_Add or e.is_Mul:
        kids.sort(key=lambda kid: kid[1])
    head = type(e).__name__
    return head, f"{head}({', '.join(kid[1] for kid in kids)})", kids


def skeleton(expr: sympy.Expr) -> str:
    """The skeleton's text, e.g. 'Mul(exp(Mul(C, m)), sign(g))' for 3 * sign(g) * exp(2 * m)."""
    return shape(expr).text


def _unscaled(expr: sympy.Expr) -> sympy.Expr:
    """expr without a positive constant factor in front."""
    if not expr.is_Mul:
        return expr
    constant = [a for a in expr.args if is_constant(a)]
    rest = [a for a in expr.args if not is_constant(a)]
    return sympy.Mul(*rest) if rest and sympy.Mul(*constant).subs(F.delta, 0).is_positive else expr


def tree_edit_distance(a: Shape, b: Shape) -> int:
    """Zhang-Shasha ordered tree edit distance with unit costs."""
    la, ma, lb, mb = a.labels, a.leftmost, b.labels, b.leftmost
    td = [[0] * b.size for _ in range(a.size)]
    for i in _keyroots(ma):
        for j in _keyroots(mb):
            ioff, joff = ma[i] - 1, mb[j] - 1
            rows, cols = i - ioff, j - joff
            fd = [[0] * (cols + 1) for _ in range(rows + 1)]
            for x in range(1, rows + 1):
                fd[x][0] = x
            for y in range(1, cols + 1):
                fd[0][y] = y
            for x in range(1, rows + 1):
                for y in range(1, cols + 1):
                    xi, yj = x + ioff, y + joff
                    if ma[xi] == ma[i] and mb[yj] == mb[j]:
                        fd[x][y] = min(fd[x - 1][y] + 1, fd[x][y - 1] + 1,
                                       fd[x - 1][y - 1] + (la[xi] != lb[yj]))
                        td[xi][yj] = fd[x][y]
                    else:
                        p, q = ma[xi] - 1 - ioff, mb[yj] - 1 - joff
                        fd[x][y] = min(fd[x - 1][y] + 1, fd[x][y - 1] + 1, fd[p][q] + td[xi][yj])
    return td[-1][-1]


def _keyroots(leftmost: tuple[int, ...]) -> list[int]:
    """The highest node of each leftmost leaf: the roots whose forests Zhang-Shasha computes."""
    highest = {leaf: node for node, leaf in enumerate(leftmost)}
    return sorted(highest.values())


def structural_distance(a: Shape, b: Shape) -> float:
    """Tree edit distance divided by the larger tree's size, in [0, 1]."""
    return tree_edit_distance(a, b) / max(a.size, b.size)


def _string_edit_distance(a: Sequence[str], b: Sequence[str], limit: int) -> int:
    """Levenshtein distance, or limit + 1 once it must exceed `limit`. Between postorder label
    sequences it is a lower bound of the tree edit distance (Guha et al. 2002), and much cheaper."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        if min(current) > limit:  # a row's minimum never decreases further down
            return limit + 1
        previous = current
    return previous[-1]


def leader_clusters(items: Sequence[tuple[sympy.Expr, T]], threshold: float = CLUSTER_THRESHOLD
                    ) -> list[list[T]]:
    """Cluster (expression, item) pairs given best first; each cluster keeps its items in that order."""
    by_skeleton: dict[str, tuple[Shape, list[T]]] = {}
    for expr, item in items:
        s = shape(expr)
        by_skeleton.setdefault(s.text, (s, []))[1].append(item)
    groups = list(by_skeleton.values())  # best first: dicts keep insertion order
    # Label histograms, one row per skeleton group, for the vectorised label bound.
    vocabulary = {label: i for i, label in enumerate(sorted({lab for s, _ in groups for lab in s.labels}))}
    counts = np.zeros((len(groups), len(vocabulary)), dtype=np.int32)
    for row, (s, _) in enumerate(groups):
        for label in s.labels:
            counts[row, vocabulary[label]] += 1
    sizes = np.array([s.size for s, _ in groups])
    leaders: list[int] = []  # group rows that founded a cluster, in order
    clusters: list[list[T]] = []
    for row, (s, group) in enumerate(groups):
        nearest = _nearest(row, groups, counts, sizes, leaders, threshold)
        if nearest is None:
            leaders.append(row)
            clusters.append(list(group))
        else:
            clusters[nearest].extend(group)
    return clusters


def _nearest(row: int, groups: list[tuple[Shape, list]], counts: np.ndarray, sizes: np.ndarray,
             leaders: list[int], threshold: float) -> int | None:
    """The index of the nearest leader within threshold (ties: the earliest, i.e. best), or None."""
    if not leaders:
        return None
    rows = np.asarray(leaders)
    # Each label the two trees do not share costs at least one edit.
    bounds = 1.0 - np.minimum(counts[rows], counts[row]).sum(axis=1) / np.maximum(sizes[rows], sizes[row])
    candidates = np.nonzero(bounds <= threshold + _SLACK)[0]
    candidates = candidates[np.argsort(bounds[candidates], kind="stable")]  # ties keep leader order
    s = groups[row][0]
    best, best_key = None, (threshold, len(leaders))
    for index in candidates:  # in order of their lower bounds, until none can beat the best
        if bounds[index] > best_key[0] + _SLACK:
            break
        leader = groups[leaders[index]][0]
        size = max(s.size, leader.size)
        if _string_edit_distance(s.labels, leader.labels, int(best_key[0] * size + _SLACK)) / size \
                > best_key[0] + _SLACK:
            continue
        key = (structural_distance(s, leader), int(index))
        if key <= best_key:
            best, best_key = int(index), key
    return best
