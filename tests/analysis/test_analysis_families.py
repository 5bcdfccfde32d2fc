"""Behavioural distance, anchors, families and the family tree."""
from __future__ import annotations

import importlib.util

import networkx as nx
import numpy as np
import pytest

from analysis.anchors import anchors
from analysis.behaviour import cross_distances, directions, distance_matrix
from analysis.families import FAMILY_CUT, SUBFAMILY_CUT, families_json, group_rules
from analysis.sources import RuleRow
from analysis.tree import ROOT, family_tree, text_tree, tree_depth, write_dot, write_graphml
from nos_cli.families_cmd import Config
from nos_symbolic import NosError, parse_rule


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


def test_families_are_behavioural_and_named_by_anchors(rule_rewards):
    families = group_rules(rows(rule_rewards))
    placement = {m.row.text: pair for m, pair in
                 ((m, families.placement()[m.index]) for m in families.members)}
    sub = {text: pair[1].name for text, pair in placement.items()}
    # Every spelling of PowerSign and its decays sits in one sub-family, named by the undecayed anchor.
    powersigns = ["powersign", "powersign-cd", "2^(sign(g)*sign(m)*ld)*g", "g*exp(sign(m)*sign(g)*rd)",
                  "3*e^(sign(g)*sign(m))*g"]
    assert {sub[t] for t in powersigns} == {"PowerSign"}
    assert sub["adam"] == "Adam" and sub["rmsprop"] == "RMSProp" and sub["sign(m)"] == "SignMomentum"
    # sign(g) exp(m) moves the weights as sign(g) does, whatever the syntax.
    assert sub["sign(g)*exp(m)"] == sub["2*sign(g)*exp(m)"] == "SignSGD"
    # A family without an anchor is named by its simplest member, in DSL.
    family_of = {text: pair[0].name for text, pair in placement.items()}
    assert family_of["sign(g)*sign(m)"] == "sign(g)*sign(m)"
    assert len(families.families) >= 2 and tree_depth(family_tree(families)) == 2
    for family in families.families:
        assert family.best.row.reward == max(m.row.reward for m in family.members)
        assert sorted(m.index for s in family.children for m in s.members) == sorted(m.index for m in family.members)


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
    names = {(f["level"], f["parent"], f["name"]) for f in view["families"]}
    assert len(names) == len(view["families"])
    tops = {f["name"] for f in view["families"] if f["level"] == "family"}
    for f in view["families"]:
        assert set(f) >= {"name", "parent", "anchor", "size", "best_rule", "best_reward"}
        assert (f["parent"] is None) == (f["level"] == "family")
        assert f["parent"] is None or f["parent"] in tops
    for r in view["rules"]:
        assert set(r) >= {"rule", "key", "family", "subfamily", "reward", "canonical", "latex"}
        assert parse_rule(r["rule"]).key == r["key"]  # the rule is DSL text that re-parses to its key
        assert ("subfamily", r["family"], r["subfamily"]) in names
    adam = next(r for r in view["rules"] if r["key"] == parse_rule("adam").key)
    assert adam["rule"] == "adam" and "delta" in adam["canonical"]


def test_edge_cases_and_bad_cuts():
    empty = group_rules([])
    assert empty.families == [] and families_json(empty)["rules"] == [] and "no trained rules" in text_tree(empty)
    one = group_rules(rows([("g", 0.5)]))
    assert [f.name for f in one.families] == ["SGD"] and one.linkage is None
    unrewarded = group_rules([RuleRow(key=parse_rule(t).key, text=t) for t in ("sign(m)", "g", "m")])
    assert {m.row.text for m in unrewarded.members} == {"sign(m)", "g", "m"}
    with pytest.raises(NosError, match="cuts must satisfy"):
        group_rules([], family_cut=0.1, subfamily_cut=0.5)
    assert (Config.family_cut, Config.subfamily_cut) == (FAMILY_CUT, SUBFAMILY_CUT)  # the CLI's defaults


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
