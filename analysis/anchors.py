"""Named anchors: the known optimizers that name the behavioural families they fall in.

Each anchor is one line of DSL. PowerSign and AddSign come with the registry's decayed variants
(-ld, -cd, -rd); a variant joins the anchors only where it moves the weights differently from the
anchors before it (d > ANCHOR_TOLERANCE on the probes), which every sign decay does since the probes
sit at random steps. A decayed SGD or Adam would not: a decay of the whole update is a positive factor
on each probe, the same direction.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from analysis.behaviour import cross_distances, directions
from nos_symbolic.registry import DECAYS, named_rule_text
from nos_symbolic.rule import Rule, parse_rule

ANCHOR_TOLERANCE = 1e-3

# name -> DSL text, most familiar first (a family holding two anchors equally near is named by the first).
BASE_ANCHORS: dict[str, str] = {
    "SGD": "g",
    "Momentum": "m",
    "Adam": "adam",
    "RMSProp": "rmsprop",
    "SignSGD": "sign(g)",
    "SignMomentum": "sign(m)",  # Lion-like: Lion steps along sign(0.9 m + 0.1 g), mostly sign(m)
    "PowerSign": named_rule_text("powersign"),
    "AddSign": named_rule_text("addsign"),
}


@dataclass(frozen=True)
class Anchor:
    """A named optimizer as a rule."""

    name: str
    text: str
    rule: Rule
    base: str  # the undecayed anchor's name: PowerSign for PowerSign-cd


def _candidates() -> list[tuple[str, str, str]]:
    found = [(name, text, name) for name, text in BASE_ANCHORS.items()]
    for name, rule in (("PowerSign", "powersign"), ("AddSign", "addsign")):
        found += [(f"{name}-{decay}", named_rule_text(rule, decay), name) for decay in DECAYS]
    return found


@lru_cache(maxsize=1)
def anchors() -> tuple[Anchor, ...]:
    """The anchors that move the weights differently from one another."""
    kept: list[Anchor] = []
    for name, text, base in _candidates():
        anchor = Anchor(name, text, parse_rule(text), base)
        if kept:
            d = cross_distances(directions([anchor.rule]), directions([a.rule for a in kept]))
            if d.min() <= ANCHOR_TOLERANCE:
                continue
        kept.append(anchor)
    return tuple(kept)
