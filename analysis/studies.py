"""Tables and plots of a run's studies (`nos confirm`, `nos transfer`) for the terminal and the report.

    tables = study_tables(Path("runs/ppo"), Path("runs/ppo/report"))   # [] when nothing was trained
    for t in tables:
        print(t.title, t.markdown, t.latex, t.plots)

Confirmation: one row per contender on the search's task, with test accuracy (mean, 95% CI), the
paired difference to the best baseline, both p-values, the verdict and steps-to-target. Transfer: a
rules x tasks table of mean test accuracy +- the CI's half-width, the best per task in bold and an
arrow where the paired test finds a rule better or worse than that task's best baseline. Each also
has a dot-and-whisker plot per task (mean and 95% CI of every contender). LaTeX is a booktabs
`tabular` fragment (no preamble) for \\input into a paper. Accuracies print as percentages.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from analysis.numbers import p_value, percent, shorten
from analysis.tables import latex_escape, md_code
from controller.store import STORE_FILENAME, RunStore
from controller.studies.summary import Summary, summarise

CONFIRM, TRANSFER = "confirm", "transfer"
_ARROWS = {"better": ("↑", r"$\uparrow$"), "worse": ("↓", r"$\downarrow$"), "same": ("", "")}


@dataclass(frozen=True)
class StudyTable:
    """One study's table (Markdown and a booktabs LaTeX fragment) and its plots (PNG files)."""

    title: str
    markdown: str
    latex: str
    plots: list[Path]


def study_tables(run_dir: Path, out_dir: Path) -> list[StudyTable]:
    """The confirmation and transfer tables of a run (plots written into out_dir); [] when the run
    holds no trainings (or no store)."""
    if not (Path(run_dir) / STORE_FILENAME).is_file():
        return []
    with RunStore.open_readonly(run_dir) as store:
        rows = store.trainings()
    tables = []
    # the confirmations at the length people train (study confirm@E) first, then at the search's length
    studies = sorted({r.study for r in rows if r.study == CONFIRM or r.study.startswith(CONFIRM + "@")},
                     key=lambda name: -int(name.partition("@")[2] or 0))
    for study in studies:
        confirm_rows = [r for r in rows if r.study == study]
        epochs = study.partition("@")[2] or None
        for task in dict.fromkeys(r.task for r in confirm_rows):
            tables.append(confirm_table(task, summarise(confirm_rows, task), out_dir, epochs))
    transfer_rows = [r for r in rows if r.study == TRANSFER]
    if transfer_rows:
        tasks = dict.fromkeys(r.task for r in transfer_rows)
        tables.append(transfer_table({t: summarise(transfer_rows, t) for t in tasks}, out_dir))
    return tables


# -- confirmation ------------------------------------------------------------------------------------


def confirm_table(task: str, summaries: Sequence[Summary], out_dir: Path, epochs: str | None = None) -> StudyTable:
    """The confirmation of one task's contenders (best mean test accuracy first); `epochs`: the length
    of a confirmation at the length people train (None: at the search's own length)."""
    n = max((len(s.seeds) for s in summaries), default=0)
    baseline = next((s.baseline for s in summaries if s.baseline), None)
    length = f"after {epochs} epochs" if epochs else "at the search's length"
    title = (f"Confirmation on {task} {length}: test {_metric(summaries)} over {n} seeds, paired against the best "
             f"baseline ({baseline or 'none'})")
    head = ("Rule", "Source", "Test acc. (%)", "95% CI", "Δ vs best (pp)", "p (t)", "p (Wilcoxon)",
            "Verdict", "Steps to target")
    md = ["| " + " | ".join(head) + " |", "|---|---|---:|---:|---:|---:|---:|---|---:|"]
    tex = [r"\begin{tabular}{llrrrrrlr}", r"\toprule",
           r"Rule & Source & Test acc.\ (\%) & 95\% CI & $\Delta$ (pp) & $p_t$ & $p_W$ & Verdict & "
           r"Steps \\", r"\midrule"]
    for s in summaries:
        cells = (percent(s.test and s.test.mean), _ci(s), _delta(s), p_value(s.paired and s.paired.p_ttest),
                 p_value(s.paired and s.paired.p_wilcoxon), s.verdict,
                 "--" if s.steps_to_target is None else str(s.steps_to_target))
        md.append(f"| {md_code(s.rule)} | {s.source} | " + " | ".join(cells) + " |")
        tex.append(rf"\texttt{{{latex_escape(s.rule)}}} & {s.source} & "
                   + " & ".join(cells) + r" \\")
    tex += [r"\bottomrule", r"\end{tabular}", ""]
    suffix = f"-{epochs}ep" if epochs else ""
    plot = plot_dots(summaries, f"{task}, {length}: test {_metric(summaries)} (mean, 95% CI)",
                     out_dir / f"confirm-{task}{suffix}.png")
    return StudyTable(title, "\n".join(md) + "\n", "\n".join(tex), [plot])


def _metric(summaries: Sequence[Summary]) -> str:
    """The name of the score the summaries hold ("accuracy", "negative MSE", ...)."""
    return next((s.metric for s in summaries), "accuracy")


# -- transfer ----------------------------------------------------------------------------------------


def transfer_table(by_task: dict[str, Sequence[Summary]], out_dir: Path) -> StudyTable:
    """Contenders x tasks: mean test accuracy +- CI half-width (%), best per task in bold, an arrow
    where the paired test puts a contender above or below the task's best baseline."""
    tasks = list(by_task)
    cells: dict[str, dict[str, Summary]] = {}
    for task, summaries in by_task.items():
        for s in summaries:
            cells.setdefault(s.rule, {})[task] = s
    order = sorted(cells, key=lambda rule: _source_rank(next(iter(cells[rule].values())).source))
    seeds = max((len(s.seeds) for ss in by_task.values() for s in ss), default=0)
    metrics = " / ".join(dict.fromkeys(_metric(ss) for ss in by_task.values())) or "accuracy"
    title = f"Transfer: test {metrics} (%) over {seeds} seeds, mean ± 95% CI half-width"
    md = ["| Rule | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    tex = [rf"\begin{{tabular}}{{l{'r' * len(tasks)}}}", r"\toprule",
           "Rule & " + " & ".join(latex_escape(t) for t in tasks) + r" \\", r"\midrule"]
    for rule in order:
        row_md, row_tex = [], []
        for task in tasks:
            s = cells[rule].get(task)
            text = "--" if s is None or s.test is None else f"{percent(s.test.mean)} ± {_half(s)}"
            arrow_md, arrow_tex = _ARROWS[s.verdict if s is not None else "same"]
            bold = s is not None and s.best
            row_md.append(f"**{text}**{arrow_md}" if bold else f"{text}{arrow_md}")
            tex_text = text.replace("±", r"$\pm$")
            row_tex.append((rf"\textbf{{{tex_text}}}" if bold else tex_text) + arrow_tex)
        md.append(f"| {md_code(rule)} | " + " | ".join(row_md) + " |")
        tex.append(rf"\texttt{{{latex_escape(rule)}}} & " + " & ".join(row_tex) + r" \\")
    tex += [r"\bottomrule", r"\end{tabular}", ""]
    plots = [plot_dots(by_task[t], f"{t}: test {_metric(by_task[t])} (mean, 95% CI)", out_dir / f"transfer-{t}.png")
             for t in tasks]
    return StudyTable(title, "\n".join(md) + "\n" + _bits_note(by_task), "\n".join(tex), plots)


def _bits_note(by_task: dict[str, Sequence[Summary]]) -> str:
    """charlm's bits per character, which the accuracy table leaves out."""
    lm = by_task.get("charlm")
    if not lm:
        return ""
    parts = [f"{md_code(s.rule)} {s.test_bits:.3f}" for s in lm if s.test_bits is not None]
    return "\ncharlm, test bits per character (lower is better): " + ", ".join(parts) + "\n"


# -- the dot-and-whisker plot ------------------------------------------------------------------------


def plot_dots(summaries: Sequence[Summary], title: str, path: Path) -> Path:
    """One row per contender: its mean test accuracy (a dot) and 95% CI (a whisker); search rules,
    given rules and baselines in three colours, the best mean as a dashed line."""
    from analysis.plots import pyplot, save_figure

    plt = pyplot()
    shown = [s for s in summaries if s.test is not None]
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.32 * max(len(shown), 1)))
    colours = {"search": "tab:blue", "given": "tab:green", "baseline": "tab:gray"}
    for y, s in enumerate(reversed(shown)):
        low = s.test.low if s.test.low is not None else s.test.mean
        high = s.test.high if s.test.high is not None else s.test.mean
        ax.errorbar(100 * s.test.mean, y, xerr=[[100 * (s.test.mean - low)], [100 * (high - s.test.mean)]],
                    fmt="o", color=colours.get(s.source, "black"), capsize=3)
    ax.set_yticks(range(len(shown)), [shorten(s.rule, 48) for s in reversed(shown)], fontsize=8)
    if shown:
        ax.axvline(100 * max(s.test.mean for s in shown), color="tab:red", linestyle="--", linewidth=0.8)
        ax.set_xlim(*_axis_range(shown))
    ax.set_xlabel(f"test {_metric(summaries)} (%)")
    ax.set_title(title, fontsize=9)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path)


def _axis_range(shown: Sequence[Summary]) -> tuple[float, float]:
    """x limits (in %) that keep the means readable: every mean with a margin of twice the median
    whisker, so one contender's huge interval (a seed at chance) does not squash the rest; an
    accuracy's axis stops at 100."""
    means = [100 * s.test.mean for s in shown]
    halves = sorted(100 * (s.test.high - s.test.mean) for s in shown if s.test.high is not None)
    pad = max(2 * (halves[len(halves) // 2] if halves else 0.0), 0.5)
    low, high = min(means) - pad, max(means) + pad
    if all(s.metric == "accuracy" for s in shown):
        high = min(high, 100.0)
    return low, high


# -- cells -------------------------------------------------------------------------------------------


def _source_rank(source: str) -> int:
    return {"search": 0, "given": 0, "baseline": 1}.get(source, 2)


def _half(s: Summary) -> str:
    return "--" if s.test is None or s.test.high is None else f"{100 * (s.test.high - s.test.mean):.2f}"


def _ci(s: Summary) -> str:
    if s.test is None or s.test.low is None:
        return "--"
    return f"[{100 * s.test.low:.2f}, {100 * s.test.high:.2f}]"


def _delta(s: Summary) -> str:
    return "--" if s.paired is None else f"{100 * s.paired.delta:+.2f}"


