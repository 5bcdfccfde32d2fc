"""The family tree: family -> sub-family -> rule as a networkx DiGraph, and three views of it: a text
tree for the terminal, a PNG drawn with matplotlib (hierarchical, left to right), and a DOT file.

Nodes: a family's node id is its name; a rule's is "rule:<input index>". Every node has `kind`
("named", "cluster", "unparsed" or "rule"), `label`, `reward` (a family's: its best rule's) and `depth`
(0 for a top-level family). Families also carry `best` (the best rule's text) and `size` (the rules
under them); rules carry `key` and `family`. Successors are stored best first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.families import Families

RULE_PREFIX = "rule:"
_COLOURS = {"named": "tab:blue", "cluster": "tab:orange", "unparsed": "tab:gray", "rule": "tab:green"}


def family_tree(families: Families) -> Any:
    """The family tree as a networkx DiGraph (see the module docstring)."""
    import networkx as nx

    graph = nx.DiGraph()
    for family in families.groups.values():  # parents come before their children
        best = families.best(family.name)
        depth = 0 if family.parent is None else graph.nodes[family.parent]["depth"] + 1
        graph.add_node(family.name, kind=family.kind, label=family.name, depth=depth,
                       reward=best.row.reward if best else None, best=best.row.text if best else None,
                       size=len(families.under(family.name)))
        if family.parent is not None:
            graph.add_edge(family.parent, family.name)
    for family in families.groups.values():
        depth = graph.nodes[family.name]["depth"] + 1
        for member in family.members:
            node = f"{RULE_PREFIX}{member.index}"
            graph.add_node(node, kind="rule", label=member.row.text, key=member.row.key,
                           reward=member.row.reward, family=family.name, depth=depth)
            graph.add_edge(family.name, node)
    return graph


def _children(graph: Any, node: str) -> list[str]:
    """Children best first: sub-families before rules, each in stored order."""
    kids = list(graph.successors(node))
    return [k for k in kids if graph.nodes[k]["kind"] != "rule"] + \
        [k for k in kids if graph.nodes[k]["kind"] == "rule"]


def _roots(graph: Any) -> list[str]:
    return [n for n in graph.nodes if graph.in_degree(n) == 0]


def _reward_text(reward: float | None) -> str:
    return "-" if reward is None else f"{reward:.4f}"


def text_tree(graph: Any, max_rules: int | None = 5, max_families: int | None = None) -> str:
    """The tree for a terminal: the best `max_families` top-level families with at most `max_rules`
    rules each (None: all)."""
    lines: list[str] = []

    def walk(node: str, prefix: str, last: bool, top: bool) -> None:
        data = graph.nodes[node]
        if data["kind"] == "rule":
            text = f"{data['label']}  reward {_reward_text(data['reward'])}"
        else:
            rules = f"{data['size']} rule{'s' * (data['size'] != 1)}"
            text = f"{data['label']}  [{data['kind']}, {rules}, best {_reward_text(data['reward'])}]"
        lines.append(text if top else f"{prefix}{'`-- ' if last else '|-- '}{text}")
        kids = _children(graph, node)
        rules = [k for k in kids if graph.nodes[k]["kind"] == "rule"]
        hidden = 0
        if max_rules is not None and len(rules) > max_rules:
            hidden = len(rules) - max_rules
            kids = kids[: len(kids) - hidden]
        child_prefix = "" if top else prefix + ("    " if last else "|   ")
        for i, kid in enumerate(kids):
            walk(kid, child_prefix, i == len(kids) - 1 and not hidden, False)
        if hidden:
            lines.append(f"{child_prefix}`-- ... {hidden} more rule{'s' * (hidden != 1)}")

    roots = _roots(graph)
    for root in roots[:max_families]:
        walk(root, "", True, True)
    if max_families is not None and len(roots) > max_families:
        lines.append(f"... {len(roots) - max_families} more top-level families")
    return "\n".join(lines) + ("\n" if lines else "")


def _node_label(data: dict) -> str:
    width = 70 if data["kind"] == "rule" else 40
    text = data["label"] if len(data["label"]) <= width else data["label"][: width - 3] + "..."
    return f"{text}  ({_reward_text(data['reward'])})"


def _layout(graph: Any, roots: list[str], max_rules: int | None
            ) -> tuple[dict[str, tuple[int, float]], list[str], int]:
    """Tidy left-to-right layout: node -> (depth, y), leaves one row apart (y = 0, -1, ...), a parent
    centred on its children; also the nodes shown, parents first, and the number of rows."""
    pos: dict[str, tuple[int, float]] = {}
    shown: list[str] = []
    rows = 0

    def place(node: str) -> float:
        nonlocal rows
        shown.append(node)
        kids = _children(graph, node)
        if max_rules is not None:
            families = [k for k in kids if graph.nodes[k]["kind"] != "rule"]
            kids = families + [k for k in kids if graph.nodes[k]["kind"] == "rule"][:max_rules]
        if kids:
            ys = [place(k) for k in kids]
            y = (ys[0] + ys[-1]) / 2
        else:
            y = -rows
            rows += 1
        pos[node] = (graph.nodes[node]["depth"], y)
        return y

    for root in roots:
        place(root)
    return pos, shown, rows


def _columns(graph: Any, pos: dict[str, tuple[int, float]], labels: dict[str, str]) -> list[int]:
    """x of each depth, in characters: a column is as wide as its longest family label, plus room for
    the connectors, so labels never run into the next column."""
    depths = max((d for d, _ in pos.values()), default=0) + 1
    widths = [0] * depths
    for node, (depth, _) in pos.items():
        if graph.nodes[node]["kind"] != "rule":
            widths[depth] = max(widths[depth], len(labels[node]))
    column = [0]
    for width in widths[:-1]:
        column.append(column[-1] + width + 8)
    return column


def draw_tree(graph: Any, path: Path | str, max_rules: int | None = 3, max_families: int | None = 40) -> Path:
    """Draw the tree to a PNG: the best `max_families` top-level families, at most `max_rules` rules
    per family (None: no limit); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    roots = _roots(graph)
    hidden = len(roots) - max_families if max_families is not None and len(roots) > max_families else 0
    pos, shown, rows = _layout(graph, roots[: len(roots) - hidden], max_rules)
    labels = {node: _node_label(graph.nodes[node]) for node in shown}
    column = _columns(graph, pos, labels)
    right = max((column[pos[n][0]] + len(labels[n]) for n in shown), default=10) + 4
    char_in = 0.075  # inches per character of 8 pt monospace, with some slack
    fig, ax = plt.subplots(figsize=(max(6.0, right * char_in), max(3.0, 0.3 * rows + 1.2)))
    for parent, child in graph.edges:
        if parent in pos and child in pos:
            (d0, y0), (d1, y1) = pos[parent], pos[child]
            start, end = column[d0] + len(labels[parent]) + 2, column[d1] - 1
            ax.plot([start, end - 3, end - 3, end], [y0, y0, y1, y1], color="0.7", lw=0.8, zorder=1)
    for node in shown:
        data, (depth, y) = graph.nodes[node], pos[node]
        ax.scatter([column[depth]], [y], s=30, color=_COLOURS[data["kind"]], zorder=2)
        ax.text(column[depth] + 1, y, labels[node], va="center", fontsize=8, family="monospace",
                fontweight="normal" if data["kind"] == "rule" else "bold")
    ax.set_xlim(-2, right)
    ax.set_ylim(-max(rows, 1) + 0.4, 0.8)
    ax.axis("off")
    kinds = {graph.nodes[n]["kind"] for n in shown}
    ax.legend(handles=[Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in _COLOURS.items()
                       if k in kinds], loc="upper right", fontsize=8, frameon=False)
    more = f"; {hidden} more top-level families not drawn" if hidden else ""
    ax.set_title(f"Family tree: family -> sub-family -> rule (best reward in brackets){more}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def to_dot(graph: Any) -> str:
    """The tree in Graphviz DOT (written directly: no pydot or pygraphviz needed)."""
    lines = ["digraph families {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for node, data in graph.nodes(data=True):
        label = f"{_dot_escape(data['label'])}\\n{_reward_text(data['reward'])}"  # \n: DOT's line break
        shape = "ellipse" if data["kind"] == "rule" else "box"
        lines.append(f'  "{_dot_escape(node)}" [label="{label}", shape={shape}, kind="{data["kind"]}"];')
    for parent, child in graph.edges:
        lines.append(f'  "{_dot_escape(parent)}" -> "{_dot_escape(child)}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_dot(graph: Any, path: Path | str) -> Path:
    """Write the DOT text of the tree; returns the path."""
    path = Path(path)
    path.write_text(to_dot(graph), encoding="utf-8")
    return path
