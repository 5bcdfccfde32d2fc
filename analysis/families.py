"""Behavioural families: trained rules clustered by how they move the weights, cut at two levels.

1. Only trained rules join (ok, diverged, failed, hurdled, or no status: a rules file); the others
   (rejected by the pre-screen, error) are counted by status and never drawn.
2. d(a, b) = 1 - mean cosine of the two rules' updates on the pre-screen's probes (analysis.behaviour).
3. Average-linkage hierarchical clustering (scipy.cluster.hierarchy) on d, cut at two heights:
   families at FAMILY_CUT (members' updates agree on average with cosine 1 - 0.6 = 0.4 or more) and
   sub-families at SUBFAMILY_CUT (cosine 0.9). Average linkage is monotone, so sub-families nest.
4. Names: an anchor (analysis.anchors: SGD, Momentum, Adam, RMSProp, SignSGD, SignMomentum, PowerSign,
   AddSign and their decayed variants) falls in the cluster of a level whose members are nearest to it
   on average, if that average is within the level's cut; a cluster is named by the nearest anchor that
   falls in it (the undecayed PowerSign rather than PowerSign-ld unless the variant is nearer by
   NAME_MARGIN), else by its simplest member (the shortest DSL text). A sub-family's name is unique
   within its family; a family's among families.

"Best" is the highest reward; rules without one (a rules file without rewards) keep their input order.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from analysis.anchors import Anchor, anchors
from analysis.behaviour import cross_distances, directions, distance_matrix
from analysis.sources import RuleRow
from nos_symbolic.dsl import to_dsl
from nos_symbolic.errors import NosError
from nos_symbolic.rule import Rule, parse_rule

FAMILY_CUT = 0.6
SUBFAMILY_CUT = 0.1
# Trained, to the end or until stopped (a rules file has no status); `rejected` (the pre-screen) and
# `error` (the evaluation itself failed) trained nothing.
JOINED_STATUSES = (None, "ok", "diverged", "failed", "hurdled")
UNPARSED = "unparsed"  # a stored text that no longer parses (a run of an older nos-symbolic)
LINKAGE = "average"
TITLE_ANCHORS = 2  # other anchors named in a family's title
NAME_MARGIN = 0.05  # how much nearer than its undecayed anchor a decayed variant must be to name a cluster


@dataclass(frozen=True)
class Member:
    """One trained input rule: its position among the joined rules (input order), its row, its parse and
    its DSL text."""

    index: int
    row: RuleRow
    rule: Rule
    dsl: str

    @property
    def rank(self) -> tuple[bool, float, int]:
        """Sort key, best first: rules with a reward by reward, then input order."""
        reward = self.row.reward
        return reward is None, -(reward or 0.0), self.index


@dataclass
class Family:
    """A family (level "family") or a sub-family (level "subfamily", with its family as parent)."""

    name: str
    level: str
    parent: str | None
    anchor: Anchor | None
    members: list[Member]  # every rule under it, best first
    children: list[Family] = field(default_factory=list)  # sub-families, best first
    also: tuple[Anchor, ...] = ()  # other anchors that fall in it, nearest first

    @property
    def title(self) -> str:
        """Its name with the nearest other anchors in it: "RMSProp (also SGD, SignSGD, +2)"."""
        if not self.also:
            return self.name
        more = len(self.also) - TITLE_ANCHORS
        return (f"{self.name} (also {', '.join(a.name for a in self.also[:TITLE_ANCHORS])}"
                f"{f', +{more}' if more > 0 else ''})")

    @property
    def best(self) -> Member:
        return self.members[0]

    @property
    def node(self) -> str:
        """Its node id in the family tree: levels and parents keep equal names apart."""
        return f"family:{self.name}" if self.parent is None else f"subfamily:{self.parent}/{self.name}"


@dataclass(frozen=True)
class Families:
    """Trained rules in families and sub-families (best first), the clustering they were cut from, and
    the count of rules left out, by status."""

    families: list[Family]
    members: tuple[Member, ...]  # in input order; row i of `distances` and leaf i of `linkage`
    excluded: dict[str, int]
    distances: np.ndarray
    linkage: np.ndarray | None  # scipy's (n - 1) x 4 merge table; None for fewer than two rules
    family_cut: float
    subfamily_cut: float

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


def group_rules(rows: Sequence[RuleRow], family_cut: float = FAMILY_CUT,
                subfamily_cut: float = SUBFAMILY_CUT) -> Families:
    """Trained rules in behavioural families and sub-families (see the module docstring)."""
    if not 0 < subfamily_cut <= family_cut <= 2:
        raise NosError(f"cuts must satisfy 0 < subfamily cut <= family cut <= 2, got {subfamily_cut} "
                       f"and {family_cut}")
    members, excluded = joined_and_excluded(rows)
    unit = directions([m.rule for m in members])
    distances = distance_matrix(unit)
    linkage, family_ids, sub_ids = _cut(distances, family_cut, subfamily_cut)
    named = anchors()
    to_anchor = cross_distances(directions([a.rule for a in named]), unit) if members else np.zeros((0, 0))
    families = []
    family_clusters = _clusters(family_ids)
    family_names = _names(members, family_clusters, to_anchor, named, family_cut)
    sub_clusters = _clusters([(f, s) for f, s in zip(family_ids, sub_ids)])
    sub_names = _names(members, sub_clusters, to_anchor, named, subfamily_cut)
    for cid, indices in family_clusters.items():
        name, anchor, also = family_names[cid]
        family = Family(name, "family", None, anchor, _best_first(members, indices), also=also)
        for sid, sub_indices in sub_clusters.items():
            if sid[0] == cid:
                sub_name, sub_anchor, sub_also = sub_names[sid]
                family.children.append(Family(sub_name, "subfamily", name, sub_anchor,
                                              _best_first(members, sub_indices), also=sub_also))
        family.children.sort(key=lambda f: f.best.rank)
        families.append(family)
    families.sort(key=lambda f: f.best.rank)
    return Families(families, tuple(members), excluded, distances, linkage, family_cut, subfamily_cut)


def _cut(distances: np.ndarray, family_cut: float, subfamily_cut: float
         ) -> tuple[np.ndarray | None, list[int], list[int]]:
    """The linkage and, per rule, its cluster at each cut."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = len(distances)
    if n < 2:
        return None, [1] * n, [1] * n
    merges = linkage(squareform(distances, checks=False), method=LINKAGE)
    families = fcluster(merges, family_cut, criterion="distance")
    subfamilies = fcluster(merges, subfamily_cut, criterion="distance")
    return merges, [int(f) for f in families], [int(s) for s in subfamilies]


def _clusters(ids: Sequence) -> dict:
    out: dict = {}
    for i, cid in enumerate(ids):
        out.setdefault(cid, []).append(i)
    return out


def _best_first(members: Sequence[Member], indices: Sequence[int]) -> list[Member]:
    return sorted((members[i] for i in indices), key=lambda m: m.rank)


def _names(members: Sequence[Member], clusters: dict, to_anchor: np.ndarray, named: Sequence[Anchor],
           cut: float) -> dict:
    """Cluster id -> (name, anchor or None, other anchors): the nearest anchor that falls in it, else its
    simplest member."""
    ids = list(clusters)
    fallen: dict = {}
    if ids and len(named):
        mean = np.array([[to_anchor[a, clusters[cid]].mean() for cid in ids] for a in range(len(named))])
        for a, anchor in enumerate(named):
            j = int(np.argmin(mean[a]))
            if mean[a, j] <= cut:
                fallen.setdefault(ids[j], []).append((mean[a, j], a, anchor))
    names = {}
    for cid in ids:
        if cid in fallen:
            nearest = sorted(fallen[cid], key=lambda f: (f[0], f[1]))
            # A decayed variant (PowerSign-ld) names it only if nearer than its undecayed anchor by NAME_MARGIN.
            name = min((f for f in nearest if f[2].base == nearest[0][2].base and f[0] <= nearest[0][0] + NAME_MARGIN),
                       key=lambda f: f[1])
            names[cid] = (name[2].name, name[2], tuple(f[2] for f in nearest if f is not name))
        else:
            simplest = min((members[i] for i in clusters[cid]), key=lambda m: (len(m.dsl), m.rank))
            names[cid] = (simplest.dsl, None, ())
    return names


def families_json(families: Families) -> dict:
    """The view `nos families --json` prints: {"families": [...], "rules": [...], "excluded": {...}}.

    Each family and sub-family: name, level, parent (its family's name; null for a family), anchor
    (null if none), anchor_rule, other_anchors, size, best_rule, best_key, best_reward. Each trained rule: rule (DSL),
    key, canonical, latex, family, subfamily, reward, status. `excluded` counts the rules that joined
    no family, by status.
    """
    out_families, out_rules = [], []
    for family in families.families:
        for node in (family, *family.children):
            best = node.best
            out_families.append({
                "name": node.name, "level": node.level, "parent": node.parent,
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
                    "family": family.name, "subfamily": sub.name, "reward": m.row.reward, "status": m.row.status,
                })
    return {"families": out_families, "rules": out_rules, "excluded": dict(sorted(families.excluded.items())),
            "cuts": {"family": families.family_cut, "subfamily": families.subfamily_cut}}
