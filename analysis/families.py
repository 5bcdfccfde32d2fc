"""Behavioural families: trained rules grouped by how they respond, in families and sub-families.

1. Only trained rules join (ok, diverged, failed, hurdled, or no status: a rules file); the others
   (rejected by the pre-screen, error) are counted by status and never drawn.
2. Each rule's signature is measured on probes (analysis.signature): its response to the scale of g, to
   v, to agreement between sign(g) and sign(m), which operand its direction follows, its decays and
   its stochastic parts.
3. A family holds the rules of one kind: PowerSign (g times base^(+-1)), AddSign (g times 1 +- 1),
   Adam-like, RMSProp-like, SignMomentum, SignSGD, SGD/Momentum, or a coarse class of the rest
   (Non-descent, Superlinear in |g|, Other responses). A sub-family holds the rules of one family that
   share the rest of the signature (PowerSign's base, a decay, the stochastic parts, an unnamed
   response's description). Each carries its signature in words.
4. Ids: families F1, F2, ... best first, sub-families F1.1, F1.2, ...; `parent` is the family's id. A
   family's anchor (analysis.anchors) is the known optimizer with its signature; a sub-family's the one
   with its sub-family signature too.
5. The tree's dendrogram is an average linkage of tiered distances: (1 - mean cosine of updates) / 2
   within a sub-family (analysis.behaviour), plus SUB_TIER between sub-families and FAMILY_TIER between
   families, so the clusters it draws are the families and sub-families.

"Best" is the highest reward; rules without one (a rules file without rewards) keep their input order.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from analysis.anchors import Anchor, anchors
from analysis.behaviour import directions, distance_matrix
from analysis.signature import Signature, signature
from analysis.sources import RuleRow
from nos_symbolic.dsl import to_dsl
from nos_symbolic.rule import Rule, parse_rule

# Trained, to the end or until stopped (a rules file has no status); `rejected` (the pre-screen) and
# `error` (the evaluation itself failed) trained nothing.
JOINED_STATUSES = (None, "ok", "diverged", "failed", "hurdled")
UNPARSED = "unparsed"  # a stored text that no longer parses (a run of an older nos-symbolic)
SUB_TIER, FAMILY_TIER = 1.0, 2.0  # added to (1 - mean cosine) / 2 between sub-families and families


@dataclass(frozen=True)
class Member:
    """One trained input rule: its position among the joined rules (input order), its row, its parse and
    its DSL text."""

    index: int
    row: RuleRow
    rule: Rule
    dsl: str
    signature: Signature | None = None

    @property
    def rank(self) -> tuple[bool, float, int]:
        """Sort key, best first: rules with a reward by reward, then input order."""
        reward = self.row.reward
        return reward is None, -(reward or 0.0), self.index


@dataclass
class Family:
    """A family (level "family", id F<i>) or a sub-family (level "subfamily", id F<i>.<j>, with its
    family's id as parent), with its signature in words."""

    id: str
    name: str
    level: str
    parent: str | None
    signature: str
    anchor: Anchor | None
    members: list[Member]  # every rule under it, best first
    children: list[Family] = field(default_factory=list)  # sub-families, best first
    also: tuple[Anchor, ...] = ()  # other anchors with its signature

    @property
    def best(self) -> Member:
        return self.members[0]

    @property
    def node(self) -> str:
        """Its node id in the family tree."""
        return f"{self.level}:{self.id}"


@dataclass(frozen=True)
class Families:
    """Trained rules in families and sub-families (best first), the tiered distances and linkage the
    dendrogram draws, and the count of rules left out, by status."""

    families: list[Family]
    members: tuple[Member, ...]  # in input order; row i of `distances` and leaf i of `linkage`
    excluded: dict[str, int]
    distances: np.ndarray
    linkage: np.ndarray | None  # scipy's (n - 1) x 4 merge table; None for fewer than two rules

    def subfamilies(self) -> list[Family]:
        return [sub for family in self.families for sub in family.children]

    def placement(self) -> dict[int, tuple[Family, Family]]:
        """Member index -> (its family, its sub-family)."""
        return {m.index: (family, sub) for family in self.families for sub in family.children
                for m in sub.members}


def joined_and_excluded(rows: Sequence[RuleRow]) -> tuple[list[Member], dict[str, int]]:
    """The rows that join families (trained, parsed) and the count of the rest by status."""
    members, excluded = [], Counter()
    for i, row in enumerate(rows):
        if row.status not in JOINED_STATUSES:
            excluded[row.status] += 1
            continue
        try:
            rule = parse_rule(row.text)
        except ValueError:  # NosError, or a rule the compiler cannot map
            excluded[UNPARSED] += 1
            continue
        members.append(Member(len(members), row, rule, to_dsl(rule)))
    return members, dict(excluded)


def group_rules(rows: Sequence[RuleRow]) -> Families:
    """Trained rules in behavioural families and sub-families (see the module docstring)."""
    members, excluded = joined_and_excluded(rows)
    members = [replace(m, signature=signature(m.rule)) for m in members]
    by_family: dict[str, dict[tuple, list[int]]] = {}
    for m in members:
        by_family.setdefault(m.signature.family, {}).setdefault(m.signature.sub_key, []).append(m.index)
    named = [(a, signature(a.rule)) for a in anchors()]
    families = [_family(members, subs, named) for subs in by_family.values()]
    families.sort(key=lambda f: f.best.rank)
    for i, family in enumerate(families, start=1):
        family.id = f"F{i}"
        for j, sub in enumerate(family.children, start=1):
            sub.id, sub.parent = f"F{i}.{j}", family.id
    distances = _tiered(members, families)
    return Families(families, tuple(members), excluded, distances, _linkage(distances))


def _family(members: Sequence[Member], subs: dict[tuple, list[int]], named: Sequence) -> Family:
    """One family from its sub-families' member indices; ids are set by the caller."""
    first = members[next(iter(subs.values()))[0]].signature
    anchor, also = _anchors(named, lambda s: s.family == first.family)
    everyone = [i for indices in subs.values() for i in indices]
    family = Family("", first.family, "family", None, first.family_text, anchor, _best_first(members, everyone),
                    also=also)
    for indices in subs.values():
        sig = members[indices[0]].signature
        sub_anchor, sub_also = _anchors(named, lambda s: s.family == sig.family and s.sub_key == sig.sub_key)
        family.children.append(Family("", _sub_name(sig, members, indices), "subfamily", None, sig.sub_text,
                                      sub_anchor, _best_first(members, indices), also=sub_also))
    family.children.sort(key=lambda f: f.best.rank)
    return family


def _sub_name(sig: Signature, members: Sequence[Member], indices: Sequence[int]) -> str:
    """"PowerSign: base 2 (x4 where signs agree)"; an unnamed response by its simplest member:
    "Other responses: like exp(sign(m))*g". Never the family's own name."""
    if not sig.description:
        return f"{sig.family}: {sig.sub_text}"
    simplest = min((members[i] for i in indices), key=lambda m: (len(m.dsl), m.rank))
    extra = f", {', '.join(sig.modifiers)}" if sig.modifiers else ""
    return f"{sig.family}: like {simplest.dsl}{extra}"


def _anchors(named: Sequence, matches) -> tuple[Anchor | None, tuple[Anchor, ...]]:
    """The first anchor whose signature `matches`, and the others that do."""
    found = [a for a, sig in named if matches(sig)]
    return (found[0], tuple(found[1:])) if found else (None, ())


def _tiered(members: Sequence[Member], families: Sequence[Family]) -> np.ndarray:
    """(1 - mean cosine) / 2 plus SUB_TIER between sub-families and FAMILY_TIER between families."""
    distances = distance_matrix(directions([m.rule for m in members])) / 2
    family_of, sub_of = np.zeros(len(members), int), np.zeros(len(members), int)
    for i, family in enumerate(families):
        for j, sub in enumerate(family.children):
            for m in sub.members:
                family_of[m.index], sub_of[m.index] = i, j
    same_family = family_of[:, None] == family_of[None, :]
    same_sub = same_family & (sub_of[:, None] == sub_of[None, :])
    tiers = np.where(same_family, np.where(same_sub, 0.0, SUB_TIER), FAMILY_TIER)
    return distances + tiers * (1 - np.eye(len(members)))


def _linkage(distances: np.ndarray) -> np.ndarray | None:
    """Average linkage of the tiered distances: every merge inside a sub-family comes before any across."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    if len(distances) < 2:
        return None
    return linkage(squareform(distances, checks=False), method="average")


def _best_first(members: Sequence[Member], indices: Sequence[int]) -> list[Member]:
    return sorted((members[i] for i in indices), key=lambda m: m.rank)


def families_json(families: Families) -> dict:
    """The view `nos families --json` prints: {"families": [...], "rules": [...], "excluded": {...}}.

    Each family and sub-family: id (F1, F1.2), name, level, parent (its family's id; null for a family),
    parent_name, signature (its response in words), anchor (the known optimizer with its signature; null
    if none), anchor_rule, other_anchors, size, best_rule, best_key, best_reward. Each trained rule: rule
    (DSL), key, canonical, latex, family, family_id, subfamily, subfamily_id, signature (the rule's own,
    in words), reward, status. `excluded` counts the rules that joined no family, by status.
    """
    out_families, out_rules = [], []
    for family in families.families:
        for node in (family, *family.children):
            best = node.best
            out_families.append({
                "id": node.id, "name": node.name, "level": node.level, "parent": node.parent,
                "parent_name": family.name if node.parent else None, "signature": node.signature,
                "anchor": node.anchor.name if node.anchor else None,
                "anchor_rule": node.anchor.text if node.anchor else None,
                "other_anchors": [a.name for a in node.also],
                "size": len(node.members), "best_rule": best.dsl, "best_key": best.row.key,
                "best_reward": best.row.reward,
            })
        for sub in family.children:
            for m in sub.members:
                out_rules.append({
                    "rule": m.dsl, "key": m.row.key, "canonical": m.rule.canonical_text, "latex": m.rule.latex(),
                    "family": family.name, "family_id": family.id, "subfamily": sub.name, "subfamily_id": sub.id,
                    "signature": m.signature.text, "reward": m.row.reward, "status": m.row.status,
                })
    return {"families": out_families, "rules": out_rules, "excluded": dict(sorted(families.excluded.items()))}
