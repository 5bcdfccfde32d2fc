"""What the CLI calls: `run_families` (nos families) and `run_report` / `write_report` (nos report).

    report = run_families(Path("runs/ppo"), None, Path("out"))   # or run_families(None, Path("rules.txt"), None)
    print(report.tree_text)
    path = write_report(Path("runs/ppo"), Path("runs/ppo/report"))   # -> runs/ppo/report/report.md

Files written to an output folder (names fixed so the report can link them):
    families.json, family_tree.txt, family_tree.png, family_tree.dot, families.tex
    and for a report also best_reward.png, reward_distribution.png, family_share.png, report.md
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.clusters import CLUSTER_THRESHOLD
from analysis.families import Families, families_json, group_rules
from analysis.plots import plot_best_reward, plot_family_share, plot_reward_distribution
from analysis.sources import RuleRow, RunData, load_rules_file, load_run
from analysis.tables import best_rules, latex_table, markdown_best_rules, markdown_families
from analysis.tree import draw_tree, family_tree, text_tree, write_dot
from nos_symbolic.errors import NosError

REPORT_DIRNAME = "report"  # write_report's default output folder, inside the run directory
TERMINAL_FAMILIES = 30  # top-level families in FamilyReport.tree_text; family_tree.txt has them all


@dataclass(frozen=True)
class FamilyReport:
    """The result of `nos families`: the JSON list, the text tree, the files written (by kind) and the
    family tree itself (a networkx DiGraph)."""

    families: list[dict]
    tree_text: str
    paths: dict[str, Path]
    graph: Any


def run_families(source: Path | None, rules_file: Path | None, out_dir: Path | None,
                 threshold: float = CLUSTER_THRESHOLD) -> FamilyReport:
    """Group the rules of a run directory (`source`) or of a rules file into families.

    With `out_dir`, also writes families.json, family_tree.txt/.png/.dot and families.tex there.
    """
    if (source is None) == (rules_file is None):
        raise NosError("give either a run directory or a rules file (--rules FILE), not both or neither")
    rows = load_rules_file(rules_file) if rules_file is not None else list(load_run(source).rules)
    families = group_rules(rows, threshold)
    graph = family_tree(families)
    paths = {} if out_dir is None else write_family_files(families, graph, _out_dir(out_dir))
    tree_text = text_tree(graph, max_families=TERMINAL_FAMILIES)
    return FamilyReport(families_json(families), tree_text, paths, graph)


def write_family_files(families: Families, graph: Any, out_dir: Path) -> dict[str, Path]:
    """families.json, the tree as text, PNG and DOT, and the LaTeX table of the best rules per family."""
    json_path = out_dir / "families.json"
    json_path.write_text(json.dumps(families_json(families), indent=2) + "\n", encoding="utf-8")
    tree_path = out_dir / "family_tree.txt"
    tree_path.write_text(text_tree(graph, max_rules=None), encoding="utf-8")
    latex_path = out_dir / "families.tex"
    latex_path.write_text(latex_table(best_rules(families)), encoding="utf-8")
    return {
        "json": json_path,
        "tree_text": tree_path,
        "tree_png": draw_tree(graph, out_dir / "family_tree.png"),
        "tree_dot": write_dot(graph, out_dir / "family_tree.dot"),
        "latex": latex_path,
    }


def run_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """`nos report RUN`: write the report into `out_dir` (default RUN/report); returns report.md."""
    return write_report(run_dir, out_dir)


def write_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Write report.md with its tables, plots and family files into `out_dir` (default RUN/report)."""
    run = load_run(run_dir)
    out = _out_dir(Path(out_dir) if out_dir is not None else run.path / REPORT_DIRNAME)
    families = group_rules(run.rules)
    graph = family_tree(families)
    paths = write_family_files(families, graph, out)
    rejected = {r.key for r in run.rules if r.status == "rejected"}
    paths["best_reward"] = plot_best_reward(run.samples, out / "best_reward.png", rejected)
    paths["reward_distribution"] = plot_reward_distribution(run.samples, out / "reward_distribution.png",
                                                            untrained=rejected)
    paths["family_share"] = plot_family_share(run.samples, families, out / "family_share.png")
    links = {kind: path.relative_to(out).as_posix() for kind, path in paths.items()}
    report = out / "report.md"
    report.write_text(_markdown(run, families, graph, links), encoding="utf-8")
    return report


def _out_dir(path: Path) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NosError(f"output folder {path} is a file; choose a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _summary(run: RunData, families: Families) -> list[str]:
    statuses = Counter(r.status or "unknown" for r in run.rules)
    strategies = Counter(s.strategy for s in run.samples)
    hits = sum(s.cache_hit for s in run.samples)
    lines = [
        f"- Run directory: `{run.path}`",
        f"- Rules evaluated: {len(run.rules)} ("
        + (", ".join(f"{status} {n}" for status, n in statuses.most_common()) or "none") + ")",
        f"- Samples drawn: {len(run.samples)} ("
        + (", ".join(f"{s} {n}" for s, n in strategies.most_common()) or "none") + ")"
        + (f"; cache hits: {hits} ({100 * hits / len(run.samples):.1f}%)" if run.samples else ""),
        f"- Families: {sum(1 for f in families.groups.values() if f.members)} "
        f"({sum(1 for f in families.roots())} at the top level)",
    ]
    best = _best_ok(run.rules)
    if best is not None:
        index = next(i for i, row in enumerate(run.rules) if row is best)
        lines.append(f"- Best rule: `{best.text}`, reward {best.reward:.4f}, family "
                     f"`{families.family_of[index]}`")
    return lines


def _best_ok(rows: tuple[RuleRow, ...]) -> RuleRow | None:
    ok = [r for r in rows if r.status == "ok" and r.reward is not None]
    return max(ok, key=lambda r: r.reward, default=None)


def _markdown(run: RunData, families: Families, graph: Any, links: dict[str, str]) -> str:
    return "\n".join([
        f"# Search report: {run.path.name}",
        "",
        *_summary(run, families),
        "",
        "## Best reward against evaluations",
        "",
        f"![Best reward against evaluations]({links['best_reward']})",
        "",
        "## Reward distribution",
        "",
        f"![Reward distribution]({links['reward_distribution']})",
        "",
        "## Family share among sampled rules",
        "",
        f"![Family share among sampled rules]({links['family_share']})",
        "",
        "## Best rules per family",
        "",
        markdown_best_rules(best_rules(families)),
        f"LaTeX: [{links['latex']}]({links['latex']})",
        "",
        "## Families",
        "",
        markdown_families(families),
        f"All members: [{links['json']}]({links['json']})",
        "",
        "## Family tree",
        "",
        f"![Family tree]({links['tree_png']})",
        "",
        f"Graphviz: [{links['tree_dot']}]({links['tree_dot']}); "
        f"full text tree: [{links['tree_text']}]({links['tree_text']})",
        "",
        "```text",
        text_tree(graph, max_rules=3, max_families=TERMINAL_FAMILIES).rstrip("\n"),
        "```",
        "",
    ])
