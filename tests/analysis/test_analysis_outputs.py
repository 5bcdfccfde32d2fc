"""Files analysis writes: families.tex, PNGs, GraphML, JSON, report.md and the self-contained report.html."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from analysis import document as doc
from analysis.families import group_rules
from analysis.plots import Curve, best_so_far, plot_best_reward
from analysis.report import run_families, write_report
from analysis.sources import load_rules_file, load_run
from analysis.studies import StudyTable
from analysis.tables import best_rules, latex_document, latex_escape
from analysis.tree import draw_tree
from nos_symbolic import NosError, parse_rule

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > 5_000, f"{path} is only {len(data)} bytes"


FRAGMENT = StudyTable("Confirmation on mnist1d: Δ ± 95% CI", "| Rule | x |\n|---|---:|\n| `g` | 1 |\n",
                      "\\begin{tabular}{lr}\n\\toprule\nRule & x \\\\\n\\midrule\n\\texttt{g} & 1 \\\\\n"
                      "\\bottomrule\n\\end{tabular}\n", [])


def test_latex_document_is_standalone_with_booktabs_math_and_study_fragments(rules_file):
    families = group_rules(load_rules_file(rules_file))
    tex = latex_document(families, "Search report: a_run", [FRAGMENT])
    assert tex.startswith(r"\documentclass") and tex.rstrip().endswith(r"\end{document}")
    assert r"\usepackage{booktabs}" in tex and r"\toprule" in tex and r"\begin{tabular}{lr}" in tex
    rows = best_rules(families)
    assert len(rows) == len(families.subfamilies())
    for row in rows:
        assert f"${row.member.rule.latex()}$" in tex and latex_escape(row.member.dsl) in tex
    assert r"a\_run" in tex and "DeclareUnicodeCharacter{0394}" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (bench/bench_latex.py installs it)")
def test_latex_document_compiles_with_pdflatex(rules_file, tmp_path):
    (tmp_path / "families.tex").write_text(latex_document(group_rules(load_rules_file(rules_file)), "t", [FRAGMENT]))
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "families.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "families.pdf").stat().st_size > 10_000


def test_best_so_far_skips_untrained_samples_and_overlays_runs(run_dir, tmp_path):
    run = load_run(run_dir)
    xs, ys = best_so_far(run.samples)
    assert ys == sorted(ys) and ys[-1] == max(s.reward for s in run.samples)
    assert xs[-1] == sum(1 for s in run.samples if not s.cache_hit and s.rule_key is not None)
    untrained = {parse_rule("powersign-cd").key}
    assert max(best_so_far(run.samples, untrained)[1]) < 0.772
    path = plot_best_reward([Curve("a", run.samples), Curve("b", run.samples[:10])], tmp_path / "best.png")
    assert_png(path)


def test_dendrogram_png_in_full_and_by_sub_family(rules_file, tmp_path):
    families = group_rules(load_rules_file(rules_file))
    assert_png(draw_tree(families, tmp_path / "full.png"))
    assert_png(draw_tree(families, tmp_path / "truncated.png", max_leaves=5))
    path = draw_tree(group_rules([]), tmp_path / "empty.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_run_families_writes_every_file(rules_file, tmp_path):
    report = run_families(None, rules_file, tmp_path / "out")
    for kind in ("json", "tree_text", "tree_graphml", "tree_png", "latex"):
        assert report.paths[kind].stat().st_size > 0
    assert json.loads(report.paths["json"].read_text()) == report.json
    assert "PowerSign" in report.tree_text
    with pytest.raises(NosError, match="either a run directory or a rules file"):
        run_families(None, None, None)


def test_report_html_is_self_contained_and_markdown_links_its_files(run_dir, tmp_path):
    other = run_dir.parent / "second"
    shutil.copytree(run_dir, other)
    md_path = write_report([run_dir, other], tmp_path / "report")
    html = (tmp_path / "report" / "report.html").read_text()
    md = md_path.read_text()
    # Nothing fetched: no external URL in any src/href, every image a data URI, formulas as SVG.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    srcs = re.findall(r'src="([^"]+)"', html)
    assert srcs and all(s.startswith("data:image/") for s in srcs)
    assert any(s.startswith("data:image/svg+xml;base64,") for s in srcs)
    assert "<script" not in html
    for name in ("best_reward.png", "family_share.png", "family_tree.png", "families.tex"):
        assert f"]({name})" in md and (tmp_path / "report" / name).is_file()
    # Two runs: the comparison table and the overlaid curve name both.
    assert "Runs compared" in md and "| run | ppo |" in md and "| second | random |" in md
    assert "`powersign-cd`" in md and "delta" not in md.split("## Family tree")[0].split("## Families")[1]


def test_report_of_a_run_without_studies_has_no_study_sections(run_dir, tmp_path):
    write_report([run_dir], tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Confirmation" not in md and "Transfer" not in md and "Runs compared" not in md


def test_markdown_tables_of_the_studies_become_html_tables():
    out = doc.html("t", [doc.Section("s", [doc.Markdown(FRAGMENT.markdown + "\nnote with `g`\n")])])
    assert '<th class="num">x</th>' in out and "<td><code>g</code></td>" in out and "<p>note with <code>g</code></p>" in out
    assert doc.formula_svg(r"\frac{\hat{m}}{\sqrt{\hat{v}}}").startswith("data:image/svg+xml;base64,")
    assert doc.formula_svg(r"\notacommand{") is None
