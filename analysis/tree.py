"""The family tree: root -> family -> sub-family -> rule as a networkx DiGraph, written with networkx's
own writers (GraphML; DOT where pydot is installed), as text for the terminal, and drawn as the
dendrogram of the clustering it was cut from, with the families and sub-families bracketed beside it.

Nodes: "all" (kind "root"), `Family.node` ("family:F1", "subfamily:F1.2") for families and sub-families
(kind "family"/"subfamily"), "rule:<i>" for trained rule i (kind "rule"). Every node has `label` (a rule's
DSL text, a family's title) and `size`; `reward` (a family's: its best rule's) where known; families have
`id`, `signature` (in words), `best_rule`, and `anchor` where they have one; rules have `key`,
`canonical` and `signature`.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from analysis.families import FAMILY_TIER, SUB_TIER, Families, Family, Member
from analysis.numbers import fixed, shorten

ROOT = "all"
RULE_PREFIX = "rule:"
MAX_LEAVES = 80  # beyond this many rules the dendrogram's leaves are sub-families
LABEL_WIDTH = 56  # characters of a rule's DSL text in the dendrogram's labels
SUB_WIDTH, FAMILY_WIDTH = 36, 48  # characters of a sub-family's and a family's title there


def _reward_text(reward: float | None) -> str:
    return fixed(reward)


def _known(**attrs: Any) -> dict[str, Any]:
    # GraphML has no null: an unknown attribute is left out.
    return {k: v for k, v in attrs.items() if v is not None}


def family_tree(families: Families) -> Any:
    """The tree as a networkx DiGraph (see the module docstring); successors are stored best first."""
    import networkx as nx

    graph = nx.DiGraph()
    best = min(families.members, key=lambda m: m.rank) if families.members else None
    graph.add_node(ROOT, **_known(kind="root", label="trained rules", size=len(families.members),
                                  reward=best.row.reward if best else None))
    for family in families.families:
        _add_family(graph, ROOT, family)
        for sub in family.children:
            _add_family(graph, family.node, sub)
            for m in sub.members:
                graph.add_node(f"{RULE_PREFIX}{m.index}", **_known(
                    kind="rule", label=m.dsl, size=1, reward=m.row.reward, key=m.row.key,
                    canonical=m.rule.canonical_text, signature=m.signature.text))
                graph.add_edge(sub.node, f"{RULE_PREFIX}{m.index}")
    return graph


def _add_family(graph: Any, parent: str, family: Family) -> None:
    graph.add_node(family.node, **_known(
        kind=family.level, label=family.name, id=family.id, signature=family.signature, size=len(family.members),
        reward=family.best.row.reward, best_rule=family.best.dsl,
        anchor=family.anchor.name if family.anchor else None))
    graph.add_edge(parent, family.node)


def write_graphml(graph: Any, path: Path | str) -> Path:
    """The tree in GraphML (networkx's writer); returns the path."""
    import networkx as nx

    path = Path(path)
    nx.write_graphml(graph, path)
    return path


def write_dot(graph: Any, path: Path | str) -> Path | None:
    """The tree in Graphviz DOT through networkx's pydot writer; None when pydot is not installed."""
    if importlib.util.find_spec("pydot") is None:
        return None
    import networkx as nx

    path = Path(path)
    # pydot reads a bare string with ':' or spaces as DOT syntax: quote every attribute value.
    quoted = nx.relabel_nodes(graph, {n: f'"{n}"' for n in graph.nodes})
    for _, data in quoted.nodes(data=True):
        for key, value in data.items():
            data[key] = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    nx.nx_pydot.write_dot(quoted, path)
    return path


def tree_depth(graph: Any) -> int:
    """Levels between the root and the rules (family, sub-family: 2)."""
    import networkx as nx

    if graph.number_of_nodes() <= 1:
        return 0
    return max(nx.single_source_shortest_path_length(graph, ROOT).values()) - 1


def excluded_text(families: Families) -> str:
    """"not in families: 389 rejected, 7 failed" (empty when every rule joined)."""
    parts = [f"{n} {status}" for status, n in sorted(families.excluded.items(), key=lambda kv: -kv[1])]
    return f"not in families (never trained): {', '.join(parts)}" if parts else ""


def text_tree(families: Families, max_rules: int | None = 3, max_families: int | None = None) -> str:
    """The tree for a terminal: families with their signatures, their sub-families and the best
    `max_rules` rules of each."""
    lines: list[str] = []
    shown = families.families[:max_families]
    for family in shown:
        lines.append(f"{family.id} {family.name}  [{_size(family)}, best {_reward_text(family.best.row.reward)}: "
                     f"{family.best.dsl}]")
        lines.append(f"   signature: {family.signature}")
        for i, sub in enumerate(family.children):
            last = i == len(family.children) - 1
            lines.append(f"{'`-- ' if last else '|-- '}{sub.id} {_sub_label(sub)}  [{_size(sub)}, best "
                         f"{_reward_text(sub.best.row.reward)}]")
            prefix = "    " if last else "|   "
            rules = sub.members if max_rules is None else sub.members[:max_rules]
            hidden = len(sub.members) - len(rules)
            for j, m in enumerate(rules):
                end = j == len(rules) - 1 and not hidden
                lines.append(f"{prefix}{'`-- ' if end else '|-- '}{m.dsl}  {_reward_text(m.row.reward)}")
            if hidden:
                lines.append(f"{prefix}`-- ... {hidden} more rule{'s' * (hidden != 1)}")
    if len(shown) < len(families.families):
        lines.append(f"... {len(families.families) - len(shown)} more families")
    if not families.members:
        lines.append("no trained rules")
    if families.excluded:
        lines.append(excluded_text(families))
    return "\n".join(lines) + "\n"


def _sub_label(sub: Family) -> str:
    """A sub-family's name, with its signature where the name does not already say it."""
    return sub.name if sub.name.endswith(sub.signature) else f"{sub.name} ({sub.signature})"


def _size(family: Family) -> str:
    return f"{len(family.members)} rule{'s' * (len(family.members) != 1)}"


# --- the dendrogram ---------------------------------------------------------------------------------

def _leaf_sets(linkage: np.ndarray, n: int) -> list[list[int]]:
    """Rule indices under each node of the linkage (0..n-1 the rules, n+k the k-th merge)."""
    under = [[i] for i in range(n)]
    for a, b, _, _ in linkage:
        under.append(under[int(a)] + under[int(b)])
    return under


def _leaves(families: Families, max_leaves: int) -> tuple[dict, list[list[int]]]:
    """scipy's dendrogram coordinates and, per leaf drawn (top to bottom), the rules under it."""
    from scipy.cluster.hierarchy import dendrogram

    n = len(families.members)
    truncate = n > max_leaves
    kwargs = dict(truncate_mode="lastp", p=len(families.subfamilies())) if truncate else {}
    tree = dendrogram(families.linkage, no_plot=True, **kwargs)
    under = _leaf_sets(families.linkage, n)  # a truncated leaf's id is its merge's, n + k
    return tree, [under[i] for i in tree["leaves"]]


def draw_tree(families: Families, path: Path | str, max_leaves: int = MAX_LEAVES) -> Path:
    """The dendrogram of the trained rules (root left, distance d on the x axis) with the two cuts, a
    row per rule (or per sub-family beyond `max_leaves` rules) and brackets naming the sub-families and
    families with their best reward; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if families.linkage is None:
        fig, ax = plt.subplots(figsize=(7, 1.6))
        ax.axis("off")
        text = (f"one trained rule: {families.members[0].dsl}" if families.members else "no trained rules")
        ax.text(0.5, 0.5, f"{text}\n{excluded_text(families)}", ha="center", va="center", fontsize=10)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path
    tree, leaves = _leaves(families, max_leaves)
    placement = families.placement()
    colours = _family_colours(families)
    rows = len(leaves)
    label_chars = LABEL_WIDTH + 14  # the DSL text, a gap, the reward and room before the first bracket
    sub_chars = 4 + min(SUB_WIDTH, max(len(s.name) for s in families.subfamilies()))
    fam_chars = 2 + min(FAMILY_WIDTH, max(len(f.name) for f in families.families) + 9)
    char_in = 0.07  # inches per character of 8 pt text, with some slack for the proportional labels
    text_in = (label_chars + sub_chars + fam_chars) * char_in
    fig = plt.figure(figsize=(4.0 + text_in, 1.5 + 0.2 * rows))
    grid = fig.add_gridspec(1, 2, width_ratios=[4.0, text_in], wspace=0.0)
    tree_ax = fig.add_subplot(grid[0])
    text_ax = fig.add_subplot(grid[1], sharey=tree_ax)
    for xs, ys in zip(tree["dcoord"], tree["icoord"]):
        tree_ax.plot(xs, ys, color=_link_colour(xs, ys, tree, leaves, placement, colours), lw=1.0)
    for cut, name in ((FAMILY_TIER, "families"), (SUB_TIER, "sub-families")):
        tree_ax.axvline(cut, color="0.4", ls="--", lw=0.8)
        tree_ax.text(cut, 10 * rows + 2, name, rotation=90, va="bottom", ha="right", fontsize=7, color="0.3")
    top = max(max(d) for d in tree["dcoord"])
    tree_ax.set_xlim(top * 1.05 + 0.02, 0)  # root on the left, leaves against the labels
    tree_ax.set_ylim(10 * rows + 14, -4)
    tree_ax.set_xlabel("(1 - mean cos(updates)) / 2, +1 across sub-families, +2 across families", fontsize=8)
    tree_ax.tick_params(axis="x", labelsize=7)
    tree_ax.set_yticks([])
    for side in ("top", "right", "left"):
        tree_ax.spines[side].set_visible(False)
    text_ax.axis("off")
    text_ax.set_xlim(0, label_chars + sub_chars + fam_chars)
    _draw_labels(text_ax, leaves, families, placement, colours, label_chars, sub_chars)
    drawn = "rule" if len(leaves) == len(families.members) else "sub-family"
    fig.suptitle(f"Family tree of {len(families.members)} trained rules (one row per {drawn}); "
                 f"best reward in brackets. {excluded_text(families)}", fontsize=9, x=0.01, ha="left")
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.5 / (1.5 + 0.2 * rows), bottom=0.6 / (1.5 + 0.2 * rows))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _family_colours(families: Families) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {f.node: cmap(i % 10) for i, f in enumerate(families.families)}


def _link_colour(xs, ys, tree, leaves, placement, colours) -> Any:
    """A link inside one family takes its colour; links joining families are grey."""
    low, high = min(ys), max(ys)
    rows = [i for i in range(len(leaves)) if low <= 5 + 10 * i <= high]
    found = {placement[r][0].node for i in rows for r in leaves[i]}
    return colours[found.pop()] if len(found) == 1 else "0.6"


def _draw_labels(ax: Any, leaves: list[list[int]], families: Families, placement: dict, colours: dict,
                 label_chars: int, sub_chars: int) -> None:
    members = families.members
    for row, indices in enumerate(leaves):
        y = 5 + 10 * row
        best: Member = min((members[i] for i in indices), key=lambda m: m.rank)
        family, sub = placement[best.index]
        if len(indices) == 1:
            label = shorten(best.dsl, LABEL_WIDTH)
        else:
            label = shorten(f"{len(indices)} rules, best {best.dsl}", LABEL_WIDTH)
        ax.text(1, y, f"{label:<{LABEL_WIDTH}} {_reward_text(best.row.reward):>8}", va="center", fontsize=8,
                family="monospace", color=colours[family.node])
    for column, level in ((label_chars, "subfamily"), (label_chars + sub_chars, "family")):
        spans: dict[str, list[int]] = {}
        for row, indices in enumerate(leaves):
            node = placement[indices[0]][0 if level == "family" else 1]
            spans.setdefault(node.node, []).append(row)
        nodes = {f.node: f for f in (families.families if level == "family" else families.subfamilies())}
        for node_id, span in spans.items():
            node = nodes[node_id]
            y0, y1 = 5 + 10 * span[0] - 4, 5 + 10 * span[-1] + 4
            colour = colours[placement[node.members[0].index][0].node]
            label = f"{shorten(node.name, FAMILY_WIDTH)} ({_reward_text(node.best.row.reward)})" \
                if level == "family" else shorten(node.name, SUB_WIDTH)
            if level == "family" or len(node.members) > 1:  # a one-rule sub-family is its row
                ax.plot([column, column], [y0, y1], color=colour, lw=2 if level == "family" else 1)
                ax.text(column + 1, (y0 + y1) / 2, label, va="center", fontsize=8, color=colour,
                        fontweight="bold" if level == "family" else "normal")
