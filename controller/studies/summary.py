"""A study's stored trainings -> one summary per contender and task. Pure: rows in, numbers out.

Per contender on a task, over its seeds:
  test accuracy      mean and 95% t-interval. A training killed as diverged or failed counts at the
                     task's chance level (its network predicts no better than a guess); one that
                     errored (it raised, timed out or lost its worker) is left out, and `errors`
                     says how many were.
  vs best baseline   the baseline with the highest mean test accuracy on the task; the paired
                     difference (contender - baseline, over the seeds both have), its paired t-test
                     and Wilcoxon p-values and the verdict (nos_symbolic.stats).
  steps-to-target    per seed, the first step of the final run at which validation accuracy reaches
                     tuned Adam's final validation accuracy with the same seed (AlgoPerf's
                     time-to-result, at epoch resolution); the lower median over seeds, a seed that
                     never got there counting as never; None when the median never got there.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

from controller.store import TrainingRow
from controller.studies.contenders import TARGET_BASELINE, baseline_key
from nos_symbolic.stats import (
    MeanCI,
    PairedTest,
    Verdict,
    first_step_reaching,
    mean_ci,
    median_steps,
    paired_test,
    verdict,
)
from nos_symbolic.tasks import metric_of

KILLED = ("diverged", "failed")  # the rule's own failure: scored at chance


@dataclass(frozen=True)
class Summary:
    """One contender on one task over its seeds (see the module docstring).

    seeds:     the seeds trained; failed / errors: how many were killed (at chance) / left out
    test:      mean and 95% CI of test accuracy (None when no seed is usable)
    lr:        the learning rate the protocol chose most often
    test_bits: mean test cross-entropy in bits per prediction (charlm: bits per character)
    best:      the highest mean test accuracy on this task
    """

    rule: str
    key: str
    source: str
    task: str
    metric: str
    seeds: tuple[int, ...]
    failed: int
    errors: int
    test: MeanCI | None
    val_mean: float | None
    lr: float | None
    test_bits: float | None
    baseline: str | None
    paired: PairedTest | None
    verdict: Verdict
    steps_to_target: int | None
    best: bool = False


def score(row: TrainingRow) -> float | None:
    """The test accuracy a training contributes: its own, chance when killed, None when errored."""
    if row.status == "ok" and row.test_acc is not None:
        return row.test_acc
    if row.status in KILLED:
        return float(row.metrics.get("chance", 0.0))
    return None


def summarise(rows: Iterable[TrainingRow], task: str) -> list[Summary]:
    """Summaries of every contender trained on `task`, best mean test accuracy first."""
    groups: dict[str, list[TrainingRow]] = {}
    for row in rows:
        if row.task == task:
            groups.setdefault(row.key, []).append(row)
    scores = {key: {r.seed: s for r in group if (s := score(r)) is not None} for key, group in groups.items()}
    baselines = [k for k, g in groups.items() if g[0].source == "baseline" and scores[k]]
    best_baseline = max(baselines, key=lambda k: statistics.fmean(scores[k].values()), default=None)
    target = {r.seed: r.val_acc for r in groups.get(baseline_key(TARGET_BASELINE), [])
              if r.status == "ok" and r.val_acc is not None}
    reference = None if best_baseline is None else (groups[best_baseline], scores[best_baseline])
    out = [_summary(group, scores[key], reference, target) for key, group in groups.items()]
    out.sort(key=lambda s: -math.inf if s.test is None else -s.test.mean)
    top = out[0].test.mean if out and out[0].test is not None else None
    return [_marked(s, top) for s in out]


def _summary(group: list[TrainingRow], scores: dict[int, float],
             baseline: tuple[list[TrainingRow], dict[int, float]] | None,
             target: dict[int, float]) -> Summary:
    first = group[0]
    paired = None
    if baseline is not None:
        common = sorted(set(scores) & set(baseline[1]))
        if common:
            paired = paired_test([scores[s] for s in common], [baseline[1][s] for s in common])
    ok = [r for r in group if r.status == "ok"]
    lrs = [r.lr for r in group if r.lr is not None]
    bits = [r.metrics["test_loss"] / math.log(2) for r in ok if r.metrics.get("test_loss") is not None]
    steps = [first_step_reaching(r.metrics.get("val_curve", []), target[r.seed])
             for r in group if r.seed in target]
    return Summary(
        rule=first.rule, key=first.key, source=first.source, task=first.task, metric=metric_of(first.task),
        seeds=tuple(sorted(r.seed for r in group)),
        failed=sum(r.status in KILLED for r in group),
        errors=len(group) - len(scores),
        test=mean_ci(list(scores.values())) if scores else None,
        val_mean=statistics.fmean(r.val_acc for r in ok if r.val_acc is not None)
        if any(r.val_acc is not None for r in ok) else None,
        lr=Counter(lrs).most_common(1)[0][0] if lrs else None,
        test_bits=statistics.fmean(bits) if bits else None,
        baseline=baseline[0][0].rule if baseline is not None else None,
        paired=paired,
        verdict=verdict(paired) if paired is not None else "same",
        steps_to_target=median_steps(steps),
    )


def _marked(s: Summary, top: float | None) -> Summary:
    return replace(s, best=s.test is not None and s.test.mean == top)


def summary_json(s: Summary) -> dict:
    """A summary as the plain dict `--json` prints (None is null)."""
    d = {
        "rule": s.rule, "key": s.key, "source": s.source, "task": s.task, "metric": s.metric,
        "seeds": list(s.seeds), "failed": s.failed, "errors": s.errors,
        "mean": s.test.mean if s.test else None,
        "ci95": [s.test.low, s.test.high] if s.test else [None, None],
        "val_acc_mean": s.val_mean, "lr": s.lr, "best": s.best,
        "best_baseline": s.baseline,
        "delta_vs_best_baseline": s.paired.delta if s.paired else None,
        "p_ttest": s.paired.p_ttest if s.paired else None,
        "p_wilcoxon": s.paired.p_wilcoxon if s.paired else None,
        "verdict": s.verdict,
        "steps_to_target": s.steps_to_target,
    }
    if s.task == "charlm":
        d["bpc"] = s.test_bits
    return d
