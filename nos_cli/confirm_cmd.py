"""Re-test a search run's best rules before believing them: the K best distinct rules and the
baselines (torch's SGD, Momentum, Adam, RMSProp; PowerSign, PowerSign-cd, AddSign, AddSign-cd) are
trained with N fresh seeds, the same for all, through the search's lr protocol, and scored on the test
split. Each rule gets its test accuracy (mean, 95% t-interval), the paired difference to the best
baseline with t-test and Wilcoxon p-values, a verdict (better / same / worse at p < 0.05, by the
t-test) and steps-to-target (the first step reaching tuned Adam's final validation accuracy).

Trainings are stored in the run's store as they finish; running the command again resumes."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from analysis.numbers import p_value
from controller.workers import Workers
from nos_cli.config import command_config, settings_from
from nos_cli.progress import ProgressReporter


@dataclass(frozen=True, kw_only=True)
class Options:
    """`nos confirm`'s own options; where its trainings run is Workers' (controller/workers.py)."""

    run: str = field(metadata={"positional": True, "help": "run directory of a search"})
    top: int = field(default=10, metadata={"help": "how many of the run's best distinct rules (K)"})
    seeds: int = field(default=5, metadata={"help": "seeds per rule (N), the same for every rule"})
    epochs: int | None = field(default=None, metadata={"help": "length of the confirmation's final runs, in epochs "
                                                                "(default: 10x the search's, 30 for a default search); "
                                                                "every rule is also trained at the search's length, "
                                                                "shown beside"})
    json: bool = field(default=False, metadata={"help": "print a JSON list"})


Config = command_config(Options, Workers)


def run(config: Config) -> int:
    from controller.studies.confirm import confirm

    reporter = ProgressReporter("confirm", "training")
    try:
        report = confirm(Path(config.run), top=config.top, seeds=config.seeds,
                         workers=settings_from(config, Workers), on_progress=lambda p: show_study(reporter, p),
                         epochs=config.epochs)
    finally:
        reporter.close()
    ((task, summaries),) = report.summaries.items()
    beside = {s.key: s for s in (report.beside or {}).get(task, [])}
    if config.json:
        print(json.dumps([confirm_json(s, beside.get(s.key), report.epochs, report.beside_epochs) for s in summaries]))
    else:
        print(_table(task, report.seeds, summaries, beside, report.epochs, report.beside_epochs))
    return 0


def confirm_json(s, short=None, epochs: int | None = None, search_epochs: int | None = None) -> dict:
    """A confirmation row: summary_json with the test accuracy under explicit names, the length it was
    trained at, and the same rule at the search's length (`search_*`, `flipped`: the verdicts differ)."""
    from controller.studies.summary import summary_json

    d = summary_json(s)
    d["test_acc_mean"], d["test_acc_ci95"] = d.pop("mean"), d.pop("ci95")
    d["epochs"], d["search_epochs"] = epochs, search_epochs
    d["search_test_acc_mean"] = short.test.mean if short is not None and short.test is not None else None
    d["search_verdict"] = short.verdict if short is not None else None
    d["search_best_baseline"] = short.baseline if short is not None else None
    d["flipped"] = short is not None and short.verdict != s.verdict
    return d


def _table(task: str, seeds: list[int], summaries, beside: dict | None = None, epochs: int | None = None,
           search_epochs: int | None = None) -> str:
    beside = beside or {}
    baseline = next((s.baseline for s in summaries if s.baseline), "none")
    short_baseline = next((s.baseline for s in beside.values() if s.baseline), "none")
    at = f" after {epochs} epochs" if epochs else ""
    metric = summaries[0].metric if summaries else "accuracy"  # the task's score, in percent (x 100)
    lines = [f"{task}: test {metric}{at} (x 100) over seeds {', '.join(map(str, seeds))}; paired against the best "
             f"baseline, {baseline}; verdict by the paired t-test at p < 0.05"]
    if search_epochs is not None and search_epochs != epochs:
        lines.append(f"beside it, at the search's length ({search_epochs} epochs, best baseline {short_baseline}): "
                     f"test % and verdict; ! marks a verdict that flips between the two lengths")
    lines.append(f"{'test %':>7}  {'95% CI':>15}  {'delta':>6}  {'p (t)':>7}  {'p (W)':>7}  {'verdict':<7}  "
                 f"{'steps':>6}  {f'@{search_epochs}':>6}  {'verdict':<8}  {'source':<8}  rule")
    for s in summaries:
        mean = "-" if s.test is None else f"{100 * s.test.mean:.2f}"
        ci = "-" if s.test is None or s.test.low is None else f"[{100 * s.test.low:.2f}, {100 * s.test.high:.2f}]"
        delta = "-" if s.paired is None else f"{100 * s.paired.delta:+.2f}"
        p_t, p_w = (p_value(s.paired.p_ttest, "-"), p_value(s.paired.p_wilcoxon, "-")) if s.paired else ("-", "-")
        steps = "-" if s.steps_to_target is None else str(s.steps_to_target)
        killed = f"  ({s.failed} killed, {s.errors} errors)" if s.failed or s.errors else ""
        short = beside.get(s.key)
        short_mean = "-" if short is None or short.test is None else f"{100 * short.test.mean:.2f}"
        flip = "-" if short is None else short.verdict + ("!" if short.verdict != s.verdict else "")
        lines.append(f"{mean:>7}  {ci:>15}  {delta:>6}  {p_t:>7}  {p_w:>7}  {s.verdict:<7}  {steps:>6}  "
                     f"{short_mean:>6}  {flip:<8}  {s.source:<8}  {s.rule}{killed}")
    better = [s for s in summaries if s.source == "search" and s.verdict == "better"]
    lines.append(f"\n{len(better)} of {sum(s.source == 'search' for s in summaries)} rules beat the best "
                 f"baseline{at} at p < 0.05" + (": " + ", ".join(s.rule for s in better) if better else ""))
    flipped = [s.rule for s in summaries if s.key in beside and beside[s.key].verdict != s.verdict]
    if flipped and search_epochs != epochs:
        lines.append(f"verdict flips between {search_epochs} and {epochs} epochs: " + ", ".join(flipped))
    return "\n".join(lines)


def show_study(reporter: ProgressReporter, p) -> None:
    """One study progress report: trainings finished of the study's, and the last one."""
    info = "" if p.last is None else (f"{p.last.rule[:40]} on {p.last.task} seed {p.last.seed}: "
                                      f"{p.last.status} {p.last.test_acc if p.last.test_acc is not None else ''}")
    reporter.show(p.stored + p.done, p.total, info, p.stored)
