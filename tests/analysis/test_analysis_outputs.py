"""Files analysis writes: the LaTeX table, PNGs, DOT, JSON and the Markdown report."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from analysis.families import group_rules
from analysis.plots import plot_best_reward, plot_family_share, plot_reward_distribution
from analysis.report import run_families, run_report, write_report
from analysis.sources import load_rules_file, load_run
from analysis.tables import best_rules, latex_escape, latex_table, markdown_best_rules, markdown_families
from analysis.tree import draw_tree, family_tree
from nos_symbolic import NosError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > 5_000, f"{path} is only {len(data)} bytes"


def table_rows(tex: str) -> list[str]:
    body = tex.split(r"\endfoot", 1)[1].split(r"\end{longtable}", 1)[0]
    return [line for line in body.splitlines() if line.rstrip().endswith(r"\\")]


def test_latex_table_has_one_row_per_listed_rule(rules_file: Path) -> None:
    families = group_rules(load_rules_file(rules_file))
    for per_family in (1, 2, 3):
        rows = best_rules(families, per_family=per_family)
        tex = latex_table(rows)
        assert len(table_rows(tex)) == len(rows)
    rows = best_rules(families, per_family=2)
    assert len({r.member.index for r in rows}) == len(rows)
    assert rows[0].family == "PowerSign-cd" and rows[0].member.row.text == "powersign-cd"
    assert [r.family for r in rows].count("PowerSign") == 2
    assert len(best_rules(families, per_family=1, max_families=3)) == 3


def test_latex_document_compiles_in_principle(rules_file: Path) -> None:
    families = group_rules(load_rules_file(rules_file))
    tex = latex_table(best_rules(families), title="Best_rules & 100% of #1")
    assert tex.startswith(r"\documentclass{article}")
    for package in ("booktabs", "amsmath", "longtable"):
        assert rf"\usepackage{{{package}}}" in tex
    assert tex.count(r"\begin{document}") == tex.count(r"\end{document}") == 1
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"Best\_rules \& 100\% of \#1" in tex
    row = next(line for line in table_rows(tex) if line.startswith("PowerSign-cd"))
    assert r"\operatorname{sign}" in row and "77.20" in row and "76.20" not in row and "$10^{-3}$" not in row
    for line in table_rows(tex):
        assert line.count("&") == 4
        assert line.count("$") % 2 == 0
    # Braces balance across the document (each formula is complete).
    assert tex.count("{") - tex.count(r"\{") == tex.count("}") - tex.count(r"\}")


def test_latex_escape() -> None:
    assert latex_escape(r"a_b^c & {d} ~ 50% #\x$") == (
        r"a\_b\textasciicircum{}c \& \{d\} \textasciitilde{} 50\% \#\textbackslash{}x\$")


def test_markdown_tables(rules_file: Path) -> None:
    families = group_rules(load_rules_file(rules_file))
    rows = best_rules(families)
    assert markdown_best_rules(rows).count("\n| ") == len(rows)
    full = markdown_families(families, max_families=None)
    assert full.count("\n| ") == len(families.groups) and "more families" not in full
    assert markdown_families(families, max_families=3).count("\n| ") == 3
    assert f"... and {len(families.groups) - 3} more families." in markdown_families(families, max_families=3)


def test_run_store_table_shows_accuracies_and_lr(run_dir: Path) -> None:
    families = group_rules(load_run(run_dir).rules)
    tex = latex_table(best_rules(families))
    row = next(line for line in table_rows(tex) if line.startswith("PowerSign-cd"))
    assert re.search(r"& 77\.20 & 76\.20 & \$10\^\{-3\}\$ \\\\$", row)


def test_pngs_are_real_pictures(run_dir: Path, tmp_path: Path) -> None:
    run = load_run(run_dir)
    families = group_rules(run.rules)
    paths = [
        draw_tree(family_tree(families), tmp_path / "tree.png"),
        plot_best_reward(run.samples, tmp_path / "best.png"),
        plot_reward_distribution(run.samples, tmp_path / "dist.png"),
        plot_family_share(run.samples, families, tmp_path / "share.png", top=3),
    ]
    for path in paths:
        assert_png(path)


def test_plots_of_an_empty_run(tmp_path: Path) -> None:
    families = group_rules([])
    for path in (plot_best_reward([], tmp_path / "a.png"), plot_reward_distribution([], tmp_path / "b.png"),
                 plot_family_share([], families, tmp_path / "c.png")):
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_run_families_from_a_rules_file(rules_file: Path, tmp_path: Path, rule_rewards) -> None:
    out = tmp_path / "out"
    report = run_families(None, rules_file, out)
    assert report.tree_text.startswith("PowerSign")
    assert set(report.paths) == {"json", "tree_text", "tree_png", "tree_dot", "latex"}
    assert all(p.parent == out and p.is_file() for p in report.paths.values())
    assert json.loads(report.paths["json"].read_text()) == report.families
    assert sum(len(f["members"]) for f in report.families) == len(rule_rewards)
    assert_png(report.paths["tree_png"])
    assert report.paths["tree_dot"].read_text().startswith("digraph")


def test_run_families_from_a_run_writes_nothing_without_out_dir(run_dir: Path, rule_rewards) -> None:
    report = run_families(run_dir, None, None)
    assert report.paths == {}
    assert sum(len(f["members"]) for f in report.families) == len(rule_rewards)
    assert report.graph.number_of_nodes() > len(rule_rewards)


def test_run_families_needs_exactly_one_source(run_dir: Path, rules_file: Path) -> None:
    with pytest.raises(NosError, match="either"):
        run_families(run_dir, rules_file, None)
    with pytest.raises(NosError, match="either"):
        run_families(None, None, None)


def test_write_report(run_dir: Path) -> None:
    report = write_report(run_dir, None)
    assert report == run_dir / "report" / "report.md"
    text = report.read_text()
    assert text.startswith("# Search report: run")
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert {"best_reward.png", "reward_distribution.png", "family_share.png", "family_tree.png",
            "families.tex", "families.json", "family_tree.dot"} <= set(links)
    for link in links:
        assert not Path(link).is_absolute()
        assert (report.parent / link).is_file()
    for png in report.parent.glob("*.png"):
        assert_png(png)
    assert "| `PowerSign-cd` |" in text and "Best rule: `powersign-cd`" in text
    assert "cache hits:" in text


def test_run_report_into_a_chosen_folder(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "rep"
    assert run_report(run_dir, out) == out / "report.md"
    with pytest.raises(NosError, match="is a file"):
        run_report(run_dir, out / "report.md")
    with pytest.raises(NosError, match="not found"):
        run_report(tmp_path / "missing")
