"""Every input rule in exactly one family: a named family or sub-family (analysis.named), a cluster of
similar rules (analysis.clusters), or "Unparsed" for a stored text that no longer parses (an old run).

Families form a tree: a named variant's parent is its generalisation (PowerSign -> PowerSign-cd ->
PowerSign-cd+wd); clusters are top-level and named after their best member's canonical text. "Best" is
the highest reward; rules without a reward (a rules file without rewards) keep their input order.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from analysis.clusters import CLUSTER_THRESHOLD, leader_clusters
from analysis.named import classify
from analysis.sources import RuleRow
from nos_symbolic.errors import NosError
from nos_symbolic.rule import Rule, parse_rule

UNPARSED = "Unparsed"


@dataclass(frozen=True)
class Member:
    """One input rule: its position among the inputs, its row and its parse (None if it no longer parses)."""

    index: int
    row: RuleRow
    rule: Rule | None

    @property
    def rank(self) -> tuple[bool, float, int]:
        """Sort key, best first: rules with a reward by reward, then input order."""
        reward = self.row.reward
        return reward is None, -(reward or 0.0), self.index


@dataclass
class Family:
    """A node of the family tree: a named family or sub-family, a cluster, or Unparsed."""

    name: str
    parent: str | None
    kind: str  # "named", "cluster" or "unparsed"
    members: list[Member] = field(default_factory=list)  # direct members, best first
    children: list[str] = field(default_factory=list)  # best first


@dataclass(frozen=True)
class Families:
    """Every input rule in exactly one family; families in display order (parents first, best first)."""

    groups: dict[str, Family]
    members: tuple[Member, ...]  # in input order
    family_of: dict[int, str]  # member index -> family name

    def roots(self) -> list[Family]:
        return [f for f in self.groups.values() if f.parent is None]

    def root_of(self, name: str) -> str:
        while self.groups[name].parent is not None:
            name = self.groups[name].parent
        return name

    def under(self, name: str) -> list[Member]:
        """Every member of a family and of its sub-families, best first."""
        found, stack = [], [name]
        while stack:
            family = self.groups[stack.pop()]
            found.extend(family.members)
            stack.extend(family.children)
        return sorted(found, key=lambda m: m.rank)

    def best(self, name: str) -> Member | None:
        under = self.under(name)
        return under[0] if under else None


def group_rules(rows: Sequence[RuleRow], threshold: float = CLUSTER_THRESHOLD) -> Families:
    """Put every rule in exactly one family: a named one, a cluster, or Unparsed."""
    if not 0 <= threshold <= 1:
        raise NosError(f"cluster threshold must be in [0, 1], got {threshold}")
    members = tuple(Member(i, row, _parse(row.text)) for i, row in enumerate(rows))
    groups: dict[str, Family] = {}
    family_of: dict[int, str] = {}
    unnamed: list[Member] = []
    for member in members:
        match = None if member.rule is None else classify(member.rule)
        if match is not None:
            _add(groups, family_of, match.lineage, "named", member)
        elif member.rule is None:
            _add(groups, family_of, (UNPARSED,), "unparsed", member)
        else:
            unnamed.append(member)
    unnamed.sort(key=lambda m: m.rank)
    for cluster in leader_clusters([(m.rule.canonical, m) for m in unnamed], threshold):
        name = cluster[0].rule.canonical_text
        for member in cluster:
            _add(groups, family_of, (name,), "cluster", member)
    return Families(_ordered(groups), members, family_of)


def _parse(text: str) -> Rule | None:
    try:
        return parse_rule(text)
    except ValueError:  # NosError, or a rule the compiler cannot map (e.g. (-1)^0.5 makes I)
        return None


def _add(groups: dict[str, Family], family_of: dict[int, str], lineage: Sequence[str], kind: str,
         member: Member) -> None:
    parent = None
    for name in lineage:
        if name not in groups:
            groups[name] = Family(name, parent, kind)
            if parent is not None:
                groups[parent].children.append(name)
        parent = name
    groups[lineage[-1]].members.append(member)
    family_of[member.index] = lineage[-1]


def _ordered(groups: dict[str, Family]) -> dict[str, Family]:
    """Depth-first, siblings best first; members best first."""
    best_rank = {}

    def rank(name: str) -> tuple:
        if name not in best_rank:
            family = groups[name]
            ranks = [m.rank for m in family.members] + [rank(c) for c in family.children]
            best_rank[name] = min(ranks)
        return best_rank[name]

    ordered: dict[str, Family] = {}
    stack = sorted((n for n, f in groups.items() if f.parent is None), key=rank, reverse=True)
    while stack:
        name = stack.pop()
        family = groups[name]
        family.members.sort(key=lambda m: m.rank)
        family.children.sort(key=rank)
        ordered[name] = family
        stack.extend(reversed(family.children))
    return ordered


def families_json(families: Families) -> list[dict]:
    """The CLI's view: every family with direct members, each {"name", "parent", "kind", "best",
    "reward", "members": [{"rule", "key", "reward"}]}; every input rule appears in exactly one."""
    out = []
    for family in families.groups.values():
        if not family.members:
            continue
        best = family.members[0]
        out.append({
            "name": family.name,
            "parent": family.parent,
            "kind": family.kind,
            "best": best.row.text,
            "reward": best.row.reward,
            "members": [{"rule": m.row.text, "key": m.row.key, "reward": m.row.reward}
                        for m in family.members],
        })
    return out
