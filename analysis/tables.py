"""Tables of the families: Markdown for the report and families.tex, a standalone LaTeX document
(article + booktabs + longtable) that compiles with pdflatex, with the study tables (confirmation,
transfer) included where the run has them.

Every rule prints as DSL text (\\texttt in LaTeX) next to its formula in math mode. Accuracies print as
percentages; the validation column falls back to the reward, which is the validation accuracy of the
short child run.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from analysis.families import Families, Family, Member
from analysis.numbers import fixed, percent, shorten

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
# Characters the study tables use in text, for pdflatex's utf8 input.
_UNICODE = {"0394": r"\ensuremath{\Delta}", "00B1": r"\ensuremath{\pm}", "2191": r"\ensuremath{\uparrow}",
            "2193": r"\ensuremath{\downarrow}", "2013": "--", "2014": "---", "2212": "-", "00B7": r"\ensuremath{\cdot}"}


@dataclass(frozen=True)
class TableRow:
    """One listed rule with its family and sub-family."""

    family: Family
    subfamily: Family
    member: Member

    @property
    def val_acc(self) -> float | None:
        row = self.member.row
        return row.val_acc if row.val_acc is not None else row.reward


def best_rules(families: Families, per_subfamily: int = 1, max_families: int | None = 20) -> list[TableRow]:
    """The best `per_subfamily` rules of every sub-family of the best `max_families` families."""
    return [TableRow(family, sub, m) for family in families.families[:max_families] for sub in family.children
            for m in sub.members[:per_subfamily]]


def latex_escape(text: str) -> str:
    """Text made safe for LaTeX's text mode."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _reward(x: float | None) -> str:
    return fixed(x, missing="--")


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


def _tt(text: str, width: int = 60) -> str:
    return rf"\texttt{{{latex_escape(shorten(text, width))}}}"


def latex_families(families: Families) -> str:
    """The families as a booktabs longtable: id, name, signature, anchor, size and best reward."""
    lines = [r"\begin{longtable}{lllp{9cm}lrr}", r"\caption{Behavioural families (best first)}\\", r"\toprule",
             r"Id & Family & Sub-family & Signature & Anchor & Rules & Best reward \\", r"\midrule", r"\endhead",
             r"\bottomrule", r"\endfoot"]
    for family in families.families:
        for node in (family, *family.children):
            top = node is family
            names = f"{_tt(node.name, 40)} & " if top else f" & {_tt(node.name, 40)}"
            lines.append(rf"{node.id} & {names} & {latex_escape(node.signature)} & "
                         rf"{latex_escape(node.anchor.name) if node.anchor else '--'} & {len(node.members)} & "
                         rf"{_reward(node.best.row.reward)} \\")
        lines.append(r"\addlinespace")
    lines.append(r"\end{longtable}")
    return "\n".join(lines)


def latex_best_rules(rows: Sequence[TableRow]) -> str:
    """The best rule of each sub-family as a booktabs longtable, formulas in math mode."""
    lines = [r"\begin{longtable}{llllrrl}", r"\caption{Best rule of each sub-family}\\", r"\toprule",
             r"Family & Sub-family & Rule (DSL) & Update & Val.\ (\%) & Test (\%) & lr \\", r"\midrule",
             r"\endhead", r"\bottomrule", r"\endfoot"]
    previous = None
    for row in rows:
        if previous is not None and row.family is not previous:
            lines.append(r"\addlinespace")
        family = _tt(row.family.name, 28) if row.family is not previous else ""
        lines.append(f"{family} & {_tt(row.subfamily.name, 28)} & {_tt(row.member.dsl, 40)} & "
                     f"${row.member.rule.latex()}$ & {percent(row.val_acc)} & "
                     f"{percent(row.member.row.test_acc)} & {_latex_lr(row.member.row.lr)} \\\\")
        previous = row.family
    lines.append(r"\end{longtable}")
    return "\n".join(lines)


def latex_document(families: Families, title: str, studies: Sequence = ()) -> str:
    """families.tex: a standalone document with the family tables and the study tables (each a
    StudyTable of analysis.studies: a booktabs tabular fragment and a title)."""
    n, subs = len(families.members), len(families.subfamilies())
    summary = (f"{n} trained rules in {len(families.families)} families and {subs} sub-families, grouped by "
               "how each rule responds on probes: to the scale of g, to v, to agreement between sign(g) and "
               "sign(m), which operand its direction follows, its decays and its stochastic parts. Each "
               "family and sub-family carries that signature in words.")
    excluded = ", ".join(f"{k} {latex_escape(status)}" for status, k in sorted(families.excluded.items()))
    study_parts = []
    for study in studies:
        study_parts += [r"\begin{table}[ht]", r"\centering", r"\footnotesize",
                        rf"\caption{{{latex_escape(study.title)}}}", r"\resizebox{\textwidth}{!}{%",
                        study.latex.strip(), "}", r"\end{table}", ""]
    return "\n".join([
        r"\documentclass{article}",
        r"\usepackage[margin=1.5cm,landscape]{geometry}",
        r"\usepackage[utf8]{inputenc}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage{amsmath}",
        r"\usepackage{booktabs}",
        r"\usepackage{longtable}",
        r"\usepackage{graphicx}",
        *(rf"\DeclareUnicodeCharacter{{{code}}}{{{tex}}}" for code, tex in _UNICODE.items()),
        r"\begin{document}",
        rf"\section*{{{latex_escape(title)}}}",
        summary + (f" Not in families (never trained): {excluded}." if excluded else ""),
        "",
        latex_families(families),
        "",
        latex_best_rules(best_rules(families)),
        "",
        *study_parts,
        r"\end{document}",
        "",
    ])


def md_code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def markdown_best_rules(rows: Sequence[TableRow]) -> str:
    """The best rule of each sub-family as a Markdown table."""
    lines = ["| Family | Sub-family | Rule | Val. acc. (%) | Test acc. (%) | lr |", "|---|---|---|---:|---:|---:|"]
    for row in rows:
        lr = row.member.row.lr
        lines.append(f"| {md_code(row.family.name)} | {md_code(row.subfamily.name)} | {md_code(row.member.dsl)} | "
                     f"{percent(row.val_acc)} | {percent(row.member.row.test_acc)} | "
                     f"{'-' if lr is None else f'{lr:.3g}'} |")
    return "\n".join(lines) + "\n"


def markdown_families(families: Families) -> str:
    """Families and their sub-families with id, signature, anchor, size, best reward and best rule, as
    Markdown."""
    lines = ["| Id | Family | Sub-family | Signature | Anchor | Rules | Best reward | Best rule |",
             "|---|---|---|---|---|---:|---:|---|"]
    for family in families.families:
        for node in (family, *family.children):
            top = node is family
            anchor = node.anchor.name if node.anchor else "-"
            lines.append(f"| {node.id} | {md_code(node.name) if top else ''} | {'' if top else md_code(node.name)} | "
                         f"{node.signature.replace('|', chr(92) + '|')} | "
                         f"{anchor} | {len(node.members)} | {_reward(node.best.row.reward)} | "
                         f"{md_code(node.best.dsl)} |")
    return "\n".join(lines) + "\n"
