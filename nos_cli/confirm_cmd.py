"""Re-test a search run's best rules before believing them: the K best distinct rules and the
baselines (torch's SGD, Momentum, Adam, RMSProp; PowerSign, PowerSign-cd, AddSign, AddSign-cd) are
trained with N fresh seeds, the same for all, through the search's lr protocol, and scored on the test
split. Each rule gets its test accuracy (mean, 95% t-interval), the paired difference to the best
baseline with t-test and Wilcoxon p-values, a verdict (better / same / worse at p < 0.05, by the
t-test) and steps-to-target (the first step reaching tuned Adam's final validation accuracy).

Trainings are stored in the run's store as they finish; running the command again resumes."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    """Where a study's trainings run (shared with `nos transfer`)."""

    workers: int | None = field(default=None, metadata={"help": "worker processes (default: one per core; 0: in this process)"})
    timeout: float = field(default=3600.0, metadata={"help": "seconds before one training is killed"})
    backend: str = field(default="local", metadata={"choices": ["local", "ray"],
                                                    "help": "local worker processes, or a Ray cluster (pip install 'nos-symbolic[ray]')"})
    address: str | None = field(default=None, metadata={"help": "Ray address: auto or ray://host:10001 (default: a local Ray instance)"})
    cpus_per_eval: float = field(default=1.0, metadata={"help": "Ray: CPUs per training"})
    gpus_per_eval: float = field(default=0.0, metadata={"help": "Ray: GPUs per training (the task then runs on cuda)"})

    def study_workers(self):
        import os

        from controller.studies.runner import Workers

        return Workers(workers=self.workers if self.workers is not None else (os.cpu_count() or 1),
                       timeout=self.timeout, backend=self.backend, address=self.address,
                       cpus_per_eval=self.cpus_per_eval, gpus_per_eval=self.gpus_per_eval)


@dataclass(frozen=True, kw_only=True)
class Config(WorkerOptions):
    run: str = field(metadata={"positional": True, "help": "run directory of a search"})
    top: int = field(default=10, metadata={"help": "how many of the run's best distinct rules (K)"})
    seeds: int = field(default=5, metadata={"help": "seeds per rule (N), the same for every rule"})
    epochs: int | None = field(default=None, metadata={"help": "length of the confirmation's final runs, in epochs "
                                                                "(default: 10x the search's, 30 for a default search); "
                                                                "every rule is also trained at the search's length, "
                                                                "shown beside"})
    json: bool = field(default=False, metadata={"help": "print a JSON list"})


def run(config: Config) -> int:
    from controller.studies.confirm import confirm

    reporter = Reporter("confirm")
    try:
        report = confirm(Path(config.run), top=config.top, seeds=config.seeds,
                         workers=config.study_workers(), on_progress=reporter.update, epochs=config.epochs)
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
        p_t, p_w = (_p(s.paired.p_ttest), _p(s.paired.p_wilcoxon)) if s.paired else ("-", "-")
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


def _p(p: float | None) -> str:
    return "-" if p is None else f"{p:.3f}" if p >= 0.001 else f"{p:.0e}"


class Reporter:
    """A progress bar on a terminal; a line every `every` seconds (and at the end) otherwise."""

    def __init__(self, desc: str, every: float = 10.0) -> None:
        self.desc, self.every, self.last = desc, every, 0.0
        self.tty = sys.stderr.isatty()
        self.bar = None

    def update(self, p) -> None:
        finished = p.stored + p.done
        info = "" if p.last is None else (f"{p.last.rule[:40]} on {p.last.task} seed {p.last.seed}: "
                                          f"{p.last.status} {p.last.test_acc if p.last.test_acc is not None else ''}")
        if self.tty:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=p.total, initial=p.stored, desc=self.desc, unit="training",
                                file=sys.stderr, dynamic_ncols=True)
            self.bar.n = finished
            self.bar.set_postfix_str(info, refresh=True)
        elif time.monotonic() - self.last >= self.every or finished >= p.total:
            self.last = time.monotonic()
            sys.stderr.write(f"[{p.wall_seconds:7.1f}s] trainings {finished}/{p.total} "
                             f"({p.stored} already stored)  {info}\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
