"""Behavioural distance, anchors, families and the family tree."""
from __future__ import annotations

import importlib.util

import networkx as nx
import numpy as np
import pytest

from analysis.anchors import anchors
from analysis.behaviour import cross_distances, directions, distance_matrix
from analysis.families import families_json, group_rules
from analysis.sources import RuleRow
from analysis.tree import ROOT, family_tree, text_tree, tree_depth, write_dot, write_graphml
from nos_symbolic import parse_rule


def d(a: str, b: str) -> float:
    return float(cross_distances(directions([parse_rule(a)]), directions([parse_rule(b)]))[0, 0])


def test_distance_is_how_differently_two_rules_move_the_weights():
    assert d("g", "3*g") == pytest.approx(0.0, abs=1e-12)  # a positive factor: the learning rate's
    assert d("g", "-g") == pytest.approx(2.0)
    assert d("sign(m)", "sign(m) - v") < 0.05  # a small added term
    assert d("g", "g + 1e-4*w") < 0.05
    assert d("adam", "drop(adam, 0.5)") < 0.1  # dropout's mean step is the rule's own
    assert d("g", "noise") > 0.9  # unrelated
    assert d("adam", "rmsprop") > 0.2
    matrix = distance_matrix(directions([parse_rule(t) for t in ("g", "m", "sign(g)")]))
    assert np.allclose(matrix, matrix.T) and np.all(np.diag(matrix) == 0)


def test_anchors_are_the_known_optimizers_and_differ_from_one_another():
    names = [a.name for a in anchors()]
    assert names[:8] == ["SGD", "Momentum", "Adam", "RMSProp", "SignSGD", "SignMomentum", "PowerSign", "AddSign"]
    assert any(n.startswith("PowerSign-") for n in names) and any(n.startswith("AddSign-") for n in names)
    unit = directions([a.rule for a in anchors()])
    between = distance_matrix(unit) + np.eye(len(names))
    assert between.min() > 1e-3
    assert all(a.base == a.name.split("-")[0] for a in anchors())


def rows(texts_rewards, status=None):
    return [RuleRow(key=parse_rule(t).key, text=t, reward=r, status=(status or {}).get(t, "ok"))
            for t, r in texts_rewards]


def test_families_are_behavioural_and_named_by_kind(rule_rewards):
    families = group_rules(rows(rule_rewards))
    placement = {m.row.text: families.placement()[m.index] for m in families.members}
    family = {text: pair[0].name for text, pair in placement.items()}
    sub = {text: pair[1].name for text, pair in placement.items()}
    powersigns = ["powersign", "powersign-cd", "2^(sign(g)*sign(m)*ld)*g", "g*exp(sign(m)*sign(g)*rd)",
                  "3*e^(sign(g)*sign(m))*g"]
    addsigns = ["addsign", "g + g*sign(g)*sign(m)", "(1 + cd*sign(m)*sign(g))*g", "addsign-ld + 1e-4*w"]
    assert {family[t] for t in powersigns} == {"PowerSign"} and {family[t] for t in addsigns} == {"AddSign"}
    # Sub-families split by base and decay, and never share their family's name.
    assert sub["powersign"] == sub["3*e^(sign(g)*sign(m))*g"] == "PowerSign: base e (x7.39 where signs agree)"
    assert "base 2" in sub["2^(sign(g)*sign(m)*ld)*g"] and "(ld)" in sub["2^(sign(g)*sign(m)*ld)*g"]
    assert "(cd)" in sub["powersign-cd"] and sub["addsign"] != sub["(1 + cd*sign(m)*sign(g))*g"]
    assert (family["adam"], family["rmsprop"], family["sign(m)"]) == ("Adam-like", "RMSProp-like", "SignMomentum")
    assert family["g"] == family["g + 1e-3*w"] == "SGD/Momentum"
    # sign(g) exp(m) moves the weights as sign(g) does, whatever the syntax.
    assert family["sign(g)*exp(m)"] == family["2*sign(g)*exp(m)"] == "SignSGD"
    assert family["sign(g)*sign(m)"] == "Non-descent"
    assert len(families.families) >= 2 and tree_depth(family_tree(families)) == 2
    for f in families.families:
        assert all(s.name != f.name and s.parent == f.id for s in f.children)
        assert f.best.row.reward == max(m.row.reward for m in f.members)
        assert sorted(m.index for s in f.children for m in s.members) == sorted(m.index for m in f.members)


def test_only_trained_rules_join_and_the_rest_are_counted(rule_rewards):
    status = {"adam": "rejected", "rmsprop": "rejected", "g": "error", "sign(m)": "diverged"}
    families = group_rules(rows(rule_rewards, status))
    joined = {m.row.text for m in families.members}
    assert joined.isdisjoint({"adam", "rmsprop", "g"}) and "sign(m)" in joined  # diverged rules trained
    assert len(joined) == len(rule_rewards) - 3
    assert families.excluded == {"rejected": 2, "error": 1}
    view = families_json(families)
    assert view["excluded"] == {"error": 1, "rejected": 2}
    assert "not in families" in text_tree(families) and "2 rejected" in text_tree(families)


def test_json_schema_puts_every_trained_rule_in_one_family_and_sub_family(rule_rewards):
    view = families_json(group_rules(rows(rule_rewards)))
    assert sorted(r["key"] for r in view["rules"]) == sorted(parse_rule(t).key for t, _ in rule_rewards)
    ids = [f["id"] for f in view["families"]]
    assert len(ids) == len(set(ids))
    by_id = {f["id"]: f for f in view["families"]}
    for f in view["families"]:
        assert set(f) >= {"id", "name", "parent", "signature", "anchor", "size", "best_rule", "best_reward"}
        assert (f["parent"] is None) == (f["level"] == "family") and f["signature"]
        if f["parent"] is not None:
            parent = by_id[f["parent"]]  # parent is an id, one step up to a family
            assert parent["level"] == "family" and parent["parent"] is None and f["name"] != parent["name"]
    for r in view["rules"]:
        assert set(r) >= {"rule", "key", "family", "family_id", "subfamily", "subfamily_id", "signature", "reward",
                          "canonical", "latex"}
        assert parse_rule(r["rule"]).key == r["key"]  # the rule is DSL text that re-parses to its key
        assert by_id[r["subfamily_id"]]["parent"] == r["family_id"] and by_id[r["family_id"]]["name"] == r["family"]
    adam = next(r for r in view["rules"] if r["key"] == parse_rule("adam").key)
    assert adam["rule"] == "adam" and "delta" in adam["canonical"] and "sqrt(v)" in adam["signature"]
    powersign = next(f for f in view["families"] if f["name"] == "PowerSign")
    assert powersign["anchor"] == "PowerSign" and "base^(+-1)" in powersign["signature"]


def test_edge_cases():
    empty = group_rules([])
    assert empty.families == [] and families_json(empty)["rules"] == [] and "no trained rules" in text_tree(empty)
    one = group_rules(rows([("g", 0.5)]))
    assert [f.name for f in one.families] == ["SGD/Momentum"] and one.linkage is None
    assert [f.id for f in one.families] == ["F1"] and one.families[0].children[0].id == "F1.1"
    unrewarded = group_rules([RuleRow(key=parse_rule(t).key, text=t) for t in ("sign(m)", "g", "m")])
    assert {m.row.text for m in unrewarded.members} == {"sign(m)", "g", "m"}


def test_family_tree_is_a_tree_written_by_networkx(rule_rewards, tmp_path):
    families = group_rules(rows(rule_rewards))
    graph = family_tree(families)
    assert nx.is_tree(graph) and graph.in_degree(ROOT) == 0
    leaves = [n for n in graph if graph.out_degree(n) == 0]
    assert len(leaves) == len(rule_rewards) and all(graph.nodes[n]["kind"] == "rule" for n in leaves)
    assert {graph.nodes[n]["label"] for n in leaves} >= {"adam", "powersign-cd", "sign(m)"}
    back = nx.read_graphml(write_graphml(graph, tmp_path / "tree.graphml"))
    assert set(back.nodes) == set(graph.nodes) and back.number_of_edges() == graph.number_of_edges()
    dot = write_dot(graph, tmp_path / "tree.dot")
    if importlib.util.find_spec("pydot") is None:
        assert dot is None
    else:
        import pydot

        parsed = pydot.graph_from_dot_file(str(dot))[0]
        assert len(parsed.get_edges()) == graph.number_of_edges()
