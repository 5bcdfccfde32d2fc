"""Behavioural families of a real run: how many top-level families and their sizes, the tree's depth,
the time to build them (parse, DSL text, signatures on the response probes, distances, linkage) and to
draw the tree; then PowerSign and AddSign in sixteen spellings with five look-alikes.

    python bench/bench_families.py RUN_DIR

Prints the figures, the top-level families with their signatures and best rules, and the spelling check
(how many spellings land in the right family, how many look-alikes stay out of both).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from analysis.families import group_rules
from analysis.sources import RuleRow, load_run
from analysis.tree import draw_tree, family_tree, tree_depth
from nos_symbolic import parse_rule

POWERSIGNS = ["powersign", "powersign-cd", "powersign-rd", "2^(sign(g)*sign(m))*g", "exp(sign(g)*sign(m))*g",
              "e^(sign(g)*sign(m))*g", "g*exp(sign(g*m))", "3*e^(sign(m)*sign(g))*g"]
ADDSIGNS = ["addsign", "addsign-ld", "addsign-cd", "(1+sign(g)*sign(m))*g", "g + sign(g)*sign(m)*g",
            "(1 + cd*sign(m)*sign(g))*g", "g*(1 + sign(g*m))", "addsign-ld + 1e-4*w"]
LOOK_ALIKES = ["exp(sign(g))*g", "exp(sign(m))*g", "g*sign(g)", "sign(g)*sign(m)", "g + m"]


def spelling_check() -> None:
    """PowerSign and AddSign spellings, look-alikes and the named optimizers grouped together."""
    texts = POWERSIGNS + ADDSIGNS + LOOK_ALIKES + ["adam", "sign(m)", "g", "rmsprop"]
    families = group_rules([RuleRow(key=parse_rule(t).key, text=t) for t in texts])
    family = {m.row.text: f.name for f in families.families for m in f.members}
    power = sum(family[t] == "PowerSign" for t in POWERSIGNS)
    add = sum(family[t] == "AddSign" for t in ADDSIGNS)
    apart = sum(family[t] not in ("PowerSign", "AddSign") for t in LOOK_ALIKES)
    named = {family[t] for t in ("adam", "sign(m)", "g", "rmsprop")}
    print(f"spellings: {power}/{len(POWERSIGNS)} PowerSign, {add}/{len(ADDSIGNS)} AddSign; look-alikes outside "
          f"both: {apart}/{len(LOOK_ALIKES)}; adam, sign(m), g, rmsprop in {len(named)} distinct families "
          f"({', '.join(sorted(named))})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = load_run(args.run)
    start = time.perf_counter()
    families = group_rules(run.rules)
    graph = family_tree(families)
    built = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        draw_tree(families, Path(tmp) / "family_tree.png")
        drawn = time.perf_counter() - start
    evaluations = sum(1 for r in run.rules if r.status != "rejected")
    n = len(families.members)
    print(f"run: {run.path} ({len(run.rules)} rules seen, {evaluations} evaluations)")
    print(f"trained rules in families: {n}; left out: {families.excluded}")
    print(f"top-level families: {len(families.families)}; sub-families: {len(families.subfamilies())}; "
          f"tree depth: {tree_depth(graph)} (family -> sub-family -> rule); largest family "
          f"{max((len(f.members) for f in families.families), default=0)} of {n}")
    print(f"time to build the families and tree: {built:.2f} s; to draw the dendrogram: {drawn:.2f} s")
    for family in families.families:
        print(f"  {family.id} {family.name}: {len(family.members)} rule(s), {len(family.children)} sub-famil(ies), "
              f"best {family.best.row.reward:.4f} {family.best.dsl}\n      signature: {family.signature}")
    spelling_check()


if __name__ == "__main__":
    main()
