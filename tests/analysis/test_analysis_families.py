"""Grouping: every rule in exactly one family, clusters by skeleton and tree edit distance, the tree."""
from __future__ import annotations

from collections import Counter

import networkx as nx
import pytest

from analysis.clusters import Shape, leader_clusters, shape, skeleton, structural_distance, tree_edit_distance
from analysis.families import UNPARSED, families_json, group_rules
from analysis.sources import RuleRow
from analysis.tree import family_tree, text_tree, to_dot
from nos_symbolic import NosError, parse_rule


def rows_of(pairs: list[tuple[str, float | None]]) -> list[RuleRow]:
    return [RuleRow(key=parse_rule(t).key, text=t, reward=r) for t, r in pairs]


@pytest.fixture
def families(rule_rewards):
    return group_rules(rows_of(rule_rewards))


def test_every_rule_is_in_exactly_one_family(families, rule_rewards) -> None:
    listed = families_json(families)
    members = [m["rule"] for family in listed for m in family["members"]]
    assert Counter(members) == Counter(text for text, _ in rule_rewards)
    assert len({family["name"] for family in listed}) == len(listed)
    for family in listed:
        assert family["best"] == family["members"][0]["rule"]
        rewards = [m["reward"] for m in family["members"]]
        assert rewards == sorted(rewards, reverse=True)
        assert {"name", "best", "members"} <= family.keys()


def test_family_of_each_rule(families, rule_rewards) -> None:
    family = {families.members[i].row.text: name for i, name in families.family_of.items()}
    assert family["powersign"] == "PowerSign"
    assert family["3*e^(sign(g)*sign(m))*g"] == "PowerSign"
    assert family["powersign-cd"] == "PowerSign-cd"
    assert family["2^(sign(g)*sign(m)*ld)*g"] == "PowerSign-ld"
    assert family["g*exp(sign(m)*sign(g)*rd)"] == "PowerSign-rd"
    assert family["g + g*sign(g)*sign(m)"] == "AddSign"
    assert family["(1 + cd*sign(m)*sign(g))*g"] == "AddSign-cd"
    assert family["addsign-ld + 1e-4*w"] == "AddSign-ld+wd"
    assert family["adam"] == "Adam"
    assert family["g + 1e-3*w"] == "SGD-like+wd"
    # sign(g) exp(m) and its scaled / reparametrised kin share one cluster, named after its best member.
    assert family["sign(g)*exp(m)"] == family["sign(g)*exp(2*m)"] == family["2*sign(g)*exp(m)"]
    assert family["2*sign(g)*exp(m)"] == parse_rule("2*sign(g)*exp(m)").canonical_text
    assert families.groups[family["sign(g)*sign(m)"]].kind == "cluster"
    assert family["sign(g)*sign(m)"] != family["sign(g)*exp(m)"]


def test_tree_shape(families, rule_rewards) -> None:
    graph = family_tree(families)
    assert nx.is_forest(graph) and nx.is_directed_acyclic_graph(graph)
    parent = {child: p for p, child in graph.edges}
    assert parent["PowerSign-cd"] == "PowerSign"
    assert parent["AddSign-ld+wd"] == "AddSign-ld" and parent["AddSign-ld"] == "AddSign"
    assert parent["Adam"] == "Adam-like" and parent["SGD-like+wd"] == "SGD-like"
    assert "PowerSign" not in parent and "AddSign" not in parent
    depth = nx.get_node_attributes(graph, "depth")
    assert (depth["PowerSign"], depth["PowerSign-cd"], depth["AddSign-ld+wd"]) == (0, 1, 2)
    rules = [n for n, d in graph.nodes(data=True) if d["kind"] == "rule"]
    assert len(rules) == len(rule_rewards)
    for node in rules:
        data = graph.nodes[node]
        assert graph.out_degree(node) == 0 and graph.in_degree(node) == 1
        assert data["depth"] == depth[parent[node]] + 1 == len(nx.ancestors(graph, node))
        assert data["family"] == parent[node]
    by_text = {graph.nodes[n]["label"]: n for n in rules}
    assert parent[by_text["powersign-cd"]] == "PowerSign-cd"
    assert parent[by_text["powersign"]] == "PowerSign"
    # A family's reward is its best rule's, anywhere below it.
    assert graph.nodes["PowerSign"]["reward"] == 0.772
    assert graph.nodes["PowerSign"]["size"] == 5
    roots = [n for n in graph if graph.in_degree(n) == 0]
    assert roots[0] == "PowerSign"  # best family first


def test_text_tree_and_dot(families) -> None:
    graph = family_tree(families)
    text = text_tree(graph)
    assert text.splitlines()[0].startswith("PowerSign  [named, 5 rules, best 0.7720]")
    assert "|-- PowerSign-cd" in text and "powersign-cd  reward 0.7720" in text
    short = text_tree(graph, max_rules=1)
    assert "... 1 more rule" in short
    top = text_tree(graph, max_families=2)
    assert [line for line in top.splitlines() if not line.startswith(("|", "`", " "))] == [
        "PowerSign  [named, 5 rules, best 0.7720]", "AddSign  [named, 4 rules, best 0.7680]",
        f"... {len([n for n in graph if graph.in_degree(n) == 0]) - 2} more top-level families"]
    dot = to_dot(graph)
    assert dot.startswith("digraph families {") and dot.rstrip().endswith("}")
    assert dot.count(" -> ") == graph.number_of_edges()
    assert '"PowerSign" -> "PowerSign-cd";' in dot


def test_rules_without_reward_keep_input_order() -> None:
    families = group_rules(rows_of([("addsign", None), ("powersign", None), ("addsign-cd", None)]))
    assert [f["name"] for f in families_json(families)] == ["AddSign", "AddSign-cd", "PowerSign"]
    assert families_json(families)[0]["reward"] is None


def test_unparsable_stored_text_goes_to_unparsed() -> None:
    rows = rows_of([("g", 0.5)]) + [RuleRow(key="old", text="oldop(g)", reward=0.4)]
    families = group_rules(rows)
    assert families.family_of[1] == UNPARSED
    assert families.groups[UNPARSED].kind == "unparsed"


def test_bad_threshold_is_refused() -> None:
    with pytest.raises(NosError, match="threshold"):
        group_rules([], threshold=2)


def test_skeleton_abstracts_numbers_decays_and_scale() -> None:
    a = parse_rule("3 * sign(g) * exp(2 * m * cd)").canonical
    b = parse_rule("sign(g) * exp(0.5 * m * ld)").canonical
    assert skeleton(a) == skeleton(b) == "Mul(exp(Mul(C, f, m)), sign(g))"
    assert skeleton(parse_rule("-g").canonical) == "Mul(-C, g)"  # a negative factor is kept


def _tree(node) -> Shape:
    labels, leftmost = [], []

    def lay_out(n) -> int:
        firsts = [lay_out(k) for k in n[1]]
        labels.append(n[0])
        leftmost.append(firsts[0] if firsts else len(labels) - 1)
        return leftmost[-1]

    lay_out(node)
    return Shape("", tuple(labels), tuple(leftmost))


def test_tree_edit_distance() -> None:
    # The classic Zhang-Shasha example: f(d(a, c(b)), e) -> f(c(d(a, b)), e) in 2 edits.
    a = _tree(("f", [("d", [("a", []), ("c", [("b", [])])]), ("e", [])]))
    b = _tree(("f", [("c", [("d", [("a", []), ("b", [])])]), ("e", [])]))
    assert tree_edit_distance(a, b) == tree_edit_distance(b, a) == 2
    assert tree_edit_distance(a, a) == 0
    assert tree_edit_distance(a, _tree(("x", []))) == 6
    s, t = shape(parse_rule("sign(g)*exp(m)").canonical), shape(parse_rule("sign(g)*exp(2*m)").canonical)
    assert structural_distance(s, t) == pytest.approx(2 / 7)


def test_leader_clusters_are_deterministic_and_ordered() -> None:
    texts = ["sign(g)*exp(m)", "sign(m)*sign(g)*g*m*v", "sign(g)*exp(3*m)", "sign(g)*exp(m)*2"]
    items = [(parse_rule(t).canonical, t) for t in texts]
    clusters = leader_clusters(items)
    assert clusters == [["sign(g)*exp(m)", "sign(g)*exp(m)*2", "sign(g)*exp(3*m)"], ["sign(m)*sign(g)*g*m*v"]]
    assert leader_clusters(items, threshold=0.0) == [["sign(g)*exp(m)", "sign(g)*exp(m)*2"],
                                                     ["sign(m)*sign(g)*g*m*v"], ["sign(g)*exp(3*m)"]]


def test_leader_clusters_match_a_brute_force_search() -> None:
    """The bounds only prune: the result equals comparing every group with every leader."""
    import itertools

    units = ["exp({})", "log({})", "sign({})", "sqrt({})", "clip({}, 1e-3)", "{}"]
    texts = [f"{u1.format(x)} {op} {u2.format(y)}"
             for u1, u2, x, y, op in itertools.product(units, units, ["g", "m", "v"], ["g", "m"], ["+", "*", "/"])]
    items = [(parse_rule(t).canonical, t) for t in texts[::7]]
    threshold = 0.35
    shapes = {}
    for expr, text in items:
        shapes.setdefault(shape(expr).text, (shape(expr), []))[1].append(text)
    expected: list[tuple[Shape, list[str]]] = []
    for s, group in shapes.values():
        scored = [(structural_distance(s, leader), i) for i, (leader, _) in enumerate(expected)]
        scored = [(d, i) for d, i in scored if d <= threshold]
        if scored:
            expected[min(scored)[1]][1].extend(group)
        else:
            expected.append((s, list(group)))
    assert leader_clusters(items, threshold) == [group for _, group in expected]
    assert 1 < len(expected) < len(shapes)
