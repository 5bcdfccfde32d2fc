"""Tables of the best rules per family: a standalone LaTeX document (article + booktabs + longtable) and
Markdown for the report.

Accuracies print as percentages; the validation column falls back to the reward, which is the
validation accuracy of the short child run. Only rules that trained to the end (status ok, or no status
for a rules file) are listed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from analysis.families import Families, Member

LISTED_STATUSES = (None, "ok")
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


@dataclass(frozen=True)
class TableRow:
    """One listed rule and the family it belongs to."""

    family: str
    member: Member

    @property
    def val_acc(self) -> float | None:
        row = self.member.row
        return row.val_acc if row.val_acc is not None else row.reward

    @property
    def formula_text(self) -> str:
        rule = self.member.rule
        return rule.canonical_text if rule is not None else self.member.row.text


def best_rules(families: Families, per_family: int = 3, max_families: int | None = 20) -> list[TableRow]:
    """The best `per_family` listed rules of each family with members, best families first."""
    picked = []
    for family in families.groups.values():
        listed = [m for m in family.members if m.row.status in LISTED_STATUSES][:per_family]
        if listed:
            picked.append((listed[0].rank, family.name, listed))
    picked.sort(key=lambda p: p[0])
    if max_families is not None:
        picked = picked[:max_families]
    return [TableRow(name, m) for _, name, listed in picked for m in listed]


def latex_escape(text: str) -> str:
    """Text made safe for LaTeX's text mode."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _percent(x: float | None) -> str:
    return "--" if x is None or not math.isfinite(x) else f"{100 * x:.2f}"


def _latex_lr(lr: float | None) -> str:
    if lr is None or not math.isfinite(lr) or lr <= 0:
        return "--"
    exponent = math.floor(math.log10(lr))
    mantissa = lr / 10**exponent
    if abs(mantissa - round(mantissa)) < 1e-9 and round(mantissa) == 1:
        return f"$10^{{{exponent}}}$"
    if -3 <= exponent < 3:
        return f"{lr:.3g}"
    return rf"${mantissa:.3g} \times 10^{{{exponent}}}$"


def _formula_latex(row: TableRow) -> str:
    member = row.member
    if member.rule is not None:
        return f"${member.rule.latex()}$"
    if member.row.latex:
        return f"${member.row.latex}$"
    return rf"\texttt{{{latex_escape(member.row.text)}}}"


def latex_table(rows: list[TableRow], title: str = "Best rules per family") -> str:
    """A compilable LaTeX document with one table row per listed rule."""
    body = []
    previous = None
    for row in rows:
        if previous is not None and row.family != previous:
            body.append(r"\addlinespace")
        family = latex_escape(_shorten(row.family)) if row.family != previous else ""
        lr = _latex_lr(row.member.row.lr)
        body.append(f"{family} & {_formula_latex(row)} & {_percent(row.val_acc)} & "
                    f"{_percent(row.member.row.test_acc)} & {lr} \\\\")
        previous = row.family
    return "\n".join([
        r"\documentclass{article}",
        r"\usepackage[margin=1.5cm,landscape]{geometry}",
        r"\usepackage{amsmath}",
        r"\usepackage{booktabs}",
        r"\usepackage{longtable}",
        r"\begin{document}",
        r"\begin{longtable}{llrrl}",
        rf"\caption{{{latex_escape(title)}}}\\",
        r"\toprule",
        r"Family & Update & Val.\ acc.\ (\%) & Test acc.\ (\%) & lr \\",
        r"\midrule",
        r"\endhead",
        r"\bottomrule",
        r"\endfoot",
        *body,
        r"\end{longtable}",
        r"\end{document}",
        "",
    ])


def _shorten(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _md_code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def _md_float(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown_best_rules(rows: list[TableRow]) -> str:
    """The best rules per family as a Markdown table."""
    lines = ["| Family | Rule | Val. acc. (%) | Test acc. (%) | lr |", "|---|---|---:|---:|---:|"]
    for row in rows:
        lr = row.member.row.lr
        lines.append(f"| {_md_code(row.family)} | {_md_code(row.formula_text)} | {_percent(row.val_acc)} | "
                     f"{_percent(row.member.row.test_acc)} | {'-' if lr is None else f'{lr:.3g}'} |")
    return "\n".join(lines) + "\n"


def markdown_families(families: Families, max_families: int | None = 40) -> str:
    """The families (the first `max_families` in display order, None: all) with parent, size and best
    rule, as a Markdown table."""
    lines = ["| Family | Parent | Kind | Rules | Best reward | Best rule |", "|---|---|---|---:|---:|---|"]
    shown = list(families.groups.values())[:max_families]
    for family in shown:
        best = families.best(family.name)
        parent = _md_code(family.parent) if family.parent else "-"
        lines.append(f"| {_md_code(_shorten(family.name, 60))} | {parent} | {family.kind} | "
                     f"{len(families.under(family.name))} | {_md_float(best.row.reward if best else None)} | "
                     f"{_md_code(best.row.text) if best else '-'} |")
    if len(shown) < len(families.groups):
        lines.append(f"\n... and {len(families.groups) - len(shown)} more families.")
    return "\n".join(lines) + "\n"
