"""What the CLI calls: `run_families` (nos families) and `write_report` (nos report RUN [RUN ...]).

    report = run_families(Path("runs/ppo"), None, Path("out"))   # or run_families(None, Path("rules.txt"), None)
    print(report.tree_text)
    path = write_report([Path("runs/ppo"), Path("runs/random")])   # -> runs/ppo/report/report.md (+ .html)

Files written to an output folder (names fixed so the report can link them):
    families.json, family_tree.txt, family_tree.graphml, family_tree.dot (with pydot), family_tree.png,
    families.tex; for a report also best_reward.png, reward_distribution.png, family_share.png,
    the study plots, report.md and report.html.
A report is about its first run (families, tables, studies); the best-reward plot and the comparison
table cover every run given.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis import document as doc
from analysis.families import Families, families_json, group_rules
from analysis.numbers import fixed, percent
from analysis.plots import Curve, best_so_far, plot_best_reward, plot_family_share, plot_reward_distribution
from analysis.sources import RunData, load_rules_file, load_run
from analysis.studies import StudyTable, study_tables
from analysis.tables import best_rules, latex_document
from analysis.tree import draw_tree, family_tree, text_tree, tree_depth, write_dot, write_graphml
from nos_symbolic.errors import NosError, SettingError
from nos_symbolic.numbers import compact

REPORT_DIRNAME = "report"  # write_report's default output folder, inside the first run directory
TERMINAL_FAMILIES = 12  # families in FamilyReport.tree_text; family_tree.txt has them all
UNTRAINED = "rejected"  # the status of rules that trained nothing (the pre-screen refused them)


@dataclass(frozen=True)
class FamilyReport:
    """The result of `nos families`: the JSON view, the text tree, the files written (by kind), the
    family tree (a networkx DiGraph) and the families themselves."""

    json: dict
    tree_text: str
    paths: dict[str, Path]
    graph: Any
    families: Families


def run_families(source: Path | None, rules_file: Path | None, out_dir: Path | None) -> FamilyReport:
    """Group the trained rules of a run directory (`source`) or of a rules file into families; with
    `out_dir`, also write the family files there (the study tables go into families.tex for a run)."""
    if (source is None) == (rules_file is None):
        raise SettingError("give either a run directory or a rules file ({0} FILE), not both or neither", "rules")
    rows = load_rules_file(rules_file) if rules_file is not None else list(load_run(source).rules)
    families = group_rules(rows)
    graph = family_tree(families)
    paths: dict[str, Path] = {}
    if out_dir is not None:
        out = _out_dir(out_dir)
        studies = study_tables(Path(source), out) if source is not None else []
        paths = write_family_files(families, graph, out, _title(source or rules_file), studies)
    return FamilyReport(families_json(families), text_tree(families, max_families=TERMINAL_FAMILIES), paths,
                        graph, families)


def write_family_files(families: Families, graph: Any, out_dir: Path, title: str,
                       studies: Sequence[StudyTable] = ()) -> dict[str, Path]:
    """families.json, the tree as text, GraphML, DOT (where pydot is installed) and PNG, and families.tex."""
    paths = {"json": out_dir / "families.json", "tree_text": out_dir / "family_tree.txt",
             "latex": out_dir / "families.tex"}
    paths["json"].write_text(json.dumps(families_json(families), indent=2) + "\n", encoding="utf-8")
    paths["tree_text"].write_text(text_tree(families, max_rules=None), encoding="utf-8")
    paths["latex"].write_text(latex_document(families, title, studies), encoding="utf-8")
    paths["tree_graphml"] = write_graphml(graph, out_dir / "family_tree.graphml")
    dot = write_dot(graph, out_dir / "family_tree.dot")
    if dot is not None:
        paths["tree_dot"] = dot
    paths["tree_png"] = draw_tree(families, out_dir / "family_tree.png")
    return paths


def run_report(run_dirs: Sequence[Path], out_dir: Path | None = None) -> Path:
    """`nos report RUN [RUN ...]`: write the report (default folder RUN/report); returns report.md."""
    return write_report(run_dirs, out_dir)


def write_report(run_dirs: Sequence[Path], out_dir: Path | None = None) -> Path:
    """Write report.md and report.html with their tables, plots and family files; returns report.md."""
    if not run_dirs:
        raise NosError("give at least one run directory")
    runs = [load_run(p) for p in run_dirs]
    run = runs[0]
    out = _out_dir(Path(out_dir) if out_dir is not None else run.path / REPORT_DIRNAME)
    families = group_rules(run.rules)
    graph = family_tree(families)
    studies = study_tables(run.path, out)
    title = _title(run.path)
    paths = write_family_files(families, graph, out, title, studies)
    curves = [Curve(_run_label(r, runs), r.samples, _untrained(r)) for r in runs]
    paths["best_reward"] = plot_best_reward(curves, out / "best_reward.png")
    paths["reward_distribution"] = plot_reward_distribution(run.samples, out / "reward_distribution.png",
                                                            untrained=_untrained(run))
    paths["family_share"] = plot_family_share(run.samples, families, out / "family_share.png")
    sections = _sections(runs, families, graph, paths, studies, out)
    report = out / "report.md"
    report.write_text(doc.markdown(title, sections, out), encoding="utf-8")
    (out / "report.html").write_text(doc.html(title, sections), encoding="utf-8")
    return report


def _title(source: Path) -> str:
    return f"Search report: {Path(source).name}"


def _out_dir(path: Path) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NosError(f"output folder {path} is a file; choose a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _untrained(run: RunData) -> set[str]:
    return {r.key for r in run.rules if r.status == UNTRAINED}


def _run_label(run: RunData, runs: Sequence[RunData]) -> str:
    names = [r.path.name for r in runs]
    return run.path.name if names.count(run.path.name) == 1 else str(run.path)


def _summary(run: RunData, families: Families, graph: Any) -> doc.Bullets:
    statuses = Counter(r.status or "unknown" for r in run.rules)
    strategies = Counter(s.strategy for s in run.samples)
    hits = sum(s.cache_hit for s in run.samples)
    items = [
        f"Run directory: `{run.path}`",
        f"Rules seen: {len(run.rules)} (" + (", ".join(f"{s} {n}" for s, n in statuses.most_common()) or "none") + ")",
        f"Samples drawn: {len(run.samples)} (" + (", ".join(f"{s} {n}" for s, n in strategies.most_common()) or "none")
        + ")" + (f"; cache hits: {hits} ({100 * hits / len(run.samples):.1f}%)" if run.samples else ""),
        f"Families: {len(families.families)} families, {len(families.subfamilies())} sub-families of "
        f"{len(families.members)} trained rules (tree depth {tree_depth(graph)}); only trained rules "
        "join (rejected and errored ones are counted above)",
    ]
    if families.members:
        best = min(families.members, key=lambda m: m.rank)
        items.append(f"Best rule: `{best.dsl}` (reward {fixed(best.row.reward)})" if best.row.reward is not None
                     else f"First rule: `{best.dsl}`")
    return doc.Bullets(items)


def _comparison(runs: Sequence[RunData]) -> doc.Table:
    rows = []
    for run in runs:
        by_strategy: dict[str, list] = {}
        for s in run.samples:
            by_strategy.setdefault(s.strategy, []).append(s)
        keyed = {r.key: r for r in run.rules}
        for strategy, samples in by_strategy.items():
            xs, ys = best_so_far(samples, _untrained(run))
            best = max((s for s in samples if s.rule_key is not None), key=lambda s: s.reward, default=None)
            rule = keyed.get(best.rule_key) if best is not None else None
            rows.append([_run_label(run, runs), strategy, str(len(samples)), str(xs[-1]), fixed(ys[-1]),
                         doc.Code(_dsl(rule.text)) if rule is not None else "-"])
    return doc.Table(["Run", "Strategy", "Samples", "Evaluations", "Best reward", "Best rule"], rows,
                     frozenset({2, 3, 4}))


def _dsl(text: str) -> str:
    from nos_symbolic.dsl import to_dsl
    from nos_symbolic.rule import parse_rule

    try:
        return to_dsl(parse_rule(text))
    except ValueError:  # a stored text an older nos-symbolic wrote and this one cannot parse
        return text


def _families_table(families: Families) -> doc.Table:
    """Families and their sub-families with their signatures; sub-families of one rule without an anchor
    are counted, not listed (family_tree.txt and families.json list them)."""
    rows = []
    for family in families.families:
        listed = [s for s in family.children if len(s.members) > 1 or s.anchor is not None]
        for node in (family, *listed):
            top = node is family
            best = node.best
            rows.append([node.id, doc.Code(node.name) if top else "", "" if top else doc.Code(node.name),
                         node.signature, node.anchor.name if node.anchor else "-", str(len(node.members)),
                         fixed(best.row.reward), doc.Code(best.dsl),
                         doc.Formula(best.rule.latex(), best.dsl)])
        single = len(family.children) - len(listed)
        if single and len(family.children) > 1:
            rows.append(["", "", f"{single} more sub-famil{'ies' if single > 1 else 'y'} of one rule each", "",
                         "", str(single), "", "", ""])
    return doc.Table(["Id", "Family", "Sub-family", "Signature", "Anchor", "Rules", "Best reward", "Best rule",
                      "Update"], rows, frozenset({5, 6}))


def _best_rules_table(families: Families) -> doc.Table:
    rows = []
    for row in best_rules(families):
        m = row.member
        pct = lambda x: percent(x, missing="-")  # noqa: E731
        rows.append([doc.Code(row.family.name), doc.Code(row.subfamily.name), doc.Code(m.dsl),
                     doc.Formula(m.rule.latex(), m.dsl), pct(row.val_acc), pct(m.row.test_acc),
                     compact(m.row.lr) if m.row.lr is not None else "-"])
    return doc.Table(["Family", "Sub-family", "Rule", "Update", "Val. acc. (%)", "Test acc. (%)", "lr"], rows,
                     frozenset({4, 5, 6}))


def _leaderboard_table(run: RunData) -> doc.Table:
    """The run's best rules as `nos top` ranks them: by the longest length each reached, then its score."""
    from nos_symbolic.dsl import dsl_text

    rows = []
    for r in run.leaderboard:
        text = dsl_text(r.text)
        short = (r.search_result or r.result).reward
        rows.append([compact(r.epochs) if r.epochs else "search", doc.Code(text), percent(r.result.reward),
                     percent(r.result.test_acc, missing="-"), percent(short)])
    return doc.Table(["Epochs", "Rule", "Val. (%)", "Test (%)", "Val. at the search's length (%)"], rows,
                     frozenset({0, 2, 3, 4}))


def _sections(runs: Sequence[RunData], families: Families, graph: Any, paths: dict[str, Path],
              studies: Sequence[StudyTable], out: Path) -> list[doc.Section]:
    links = {k: doc.relative(p, out) for k, p in paths.items()}
    files = ", ".join(f"[{links[k]}]({links[k]})" for k in ("tree_graphml", "tree_dot", "tree_text", "json", "latex")
                      if k in links)
    sections = [doc.Section("Summary", [_summary(runs[0], families, graph)])]
    if len(runs) > 1:
        sections.append(doc.Section("Runs compared", [_comparison(runs)]))
    sections += [
        doc.Section("Leaderboard", [
            doc.Paragraph("The best rules by the longest length each was trained to (the search promotes the best "
                          "of each length to the next), then by validation score there."),
            _leaderboard_table(runs[0])]),
        doc.Section("Best reward against evaluations", [doc.Image(paths["best_reward"], "Best reward against evaluations")]),
        doc.Section("Reward distribution", [doc.Image(paths["reward_distribution"], "Reward distribution")]),
        doc.Section("Families", [
            doc.Paragraph("Rules are grouped by how they respond on probes: to the scale of g (sign-like rules "
                          "ignore it, SGD follows it, Adam normalises it by sqrt(v)), to agreement between sign(g) "
                          "and sign(m) (PowerSign multiplies g by base^(+-1), AddSign by 1 +- 1), which operand "
                          "the direction follows, decays and stochastic parts. A family holds one kind (PowerSign, "
                          "AddSign, Adam-like, RMSProp-like, SignMomentum, SignSGD, SGD/Momentum, or a coarse "
                          "class of the rest); its sub-families split it by the rest of the signature."),
            _families_table(families)]),
        doc.Section("Best rule of each sub-family", [_best_rules_table(families)]),
        doc.Section("Family share among sampled rules", [doc.Image(paths["family_share"], "Family share")]),
        doc.Section("Family tree", [doc.Image(paths["tree_png"], "Family tree"), doc.Paragraph(f"Files: {files}"),
                                    doc.Pre(text_tree(families, max_rules=3, max_families=TERMINAL_FAMILIES))]),
    ]
    for study in studies:
        sections.append(doc.Section(study.title, [doc.Markdown(study.markdown)]
                                    + [doc.Image(p, study.title) for p in study.plots]))
    return sections
