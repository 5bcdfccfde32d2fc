"""Behavioural families of a real run: how many top-level families, the tree's depth, and the time to
build them (parse, DSL text, updates on the probes, clustering, naming) and to draw the tree.

    python bench/bench_families.py RUN_DIR [--family-cut 0.6] [--subfamily-cut 0.1]

Prints the figures and the top-level families with their best rules.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from analysis.families import FAMILY_CUT, SUBFAMILY_CUT, group_rules
from analysis.sources import load_run
from analysis.tree import draw_tree, family_tree, tree_depth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--family-cut", type=float, default=FAMILY_CUT)
    ap.add_argument("--subfamily-cut", type=float, default=SUBFAMILY_CUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = load_run(args.run)
    start = time.perf_counter()
    families = group_rules(run.rules, args.family_cut, args.subfamily_cut)
    graph = family_tree(families)
    built = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        draw_tree(families, Path(tmp) / "family_tree.png")
        drawn = time.perf_counter() - start
    evaluations = sum(1 for r in run.rules if r.status != "rejected")
    print(f"run: {run.path} ({len(run.rules)} rules seen, {evaluations} evaluations)")
    print(f"trained rules in families: {len(families.members)}; left out: {families.excluded}")
    print(f"top-level families: {len(families.families)}; sub-families: {len(families.subfamilies())}; "
          f"tree depth: {tree_depth(graph)} (family -> sub-family -> rule)")
    print(f"time to build the families and tree: {built:.2f} s; to draw the dendrogram: {drawn:.2f} s")
    for family in families.families:
        print(f"  {family.title}: {len(family.members)} rule(s), {len(family.children)} sub-famil(ies), "
              f"best {family.best.row.reward:.4f} {family.best.dsl}")


if __name__ == "__main__":
    main()
