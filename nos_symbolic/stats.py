"""Statistics of repeated trainings: means with t confidence intervals, paired tests, verdicts and
steps-to-target. Pure functions of numbers: no I/O, no torch.

Seeds pair the trainings: with the same seed two optimizers start from the same weights and see the
same batches, so the per-seed difference of their scores removes most of the seed noise, and the
paired tests below (scipy.stats.ttest_rel and wilcoxon) test whether that difference is zero.

Degenerate cases give defined answers instead of NaN:
- fewer than two values: no interval (low = high = None), no test (p = None, printed as null);
- all paired differences zero: p = 1.0 for both tests (no evidence of any difference);
- identical nonzero differences: the t statistic is infinite and p_ttest = 0.0 (scipy's answer).
The Wilcoxon signed-rank test is exact for small n; with n = 5 pairs its smallest two-sided p-value
is 2 / 2^5 = 0.0625, so it can never pass p < 0.05 there. Verdicts therefore use the t-test, and
the Wilcoxon p-value stands beside it as the check that does not assume normal differences.
"""
from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ALPHA = 0.05
CONFIDENCE = 0.95
Verdict = Literal["better", "same", "worse"]


@dataclass(frozen=True)
class MeanCI:
    """The mean of n values and its t confidence interval [low, high] (None when n < 2)."""

    mean: float
    low: float | None
    high: float | None
    n: int


@dataclass(frozen=True)
class PairedTest:
    """a - b over n pairs: mean difference, paired t-test and Wilcoxon signed-rank p-values."""

    delta: float
    p_ttest: float | None
    p_wilcoxon: float | None
    n: int


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> MeanCI:
    """mean +- t_{(1+c)/2, n-1} * s / sqrt(n), s the sample standard deviation."""
    from scipy import stats

    if not values:
        raise ValueError("mean_ci needs at least one value")
    n, mean = len(values), statistics.fmean(values)
    if n < 2:
        return MeanCI(mean, None, None, n)
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return MeanCI(mean, mean - half, mean + half, n)


def paired_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Test whether a_i - b_i is centred on zero (two-sided), a and b paired by position."""
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    if not a:
        raise ValueError("paired_test needs at least one pair")
    diffs = [x - y for x, y in zip(a, b)]
    delta = statistics.fmean(diffs)
    if len(diffs) < 2:
        return PairedTest(delta, None, None, len(diffs))
    if all(d == 0 for d in diffs):
        return PairedTest(0.0, 1.0, 1.0, len(diffs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance: scipy warns, answers inf
        p_t = float(stats.ttest_rel(a, b).pvalue)
        p_w = float(stats.wilcoxon(diffs).pvalue)
    return PairedTest(delta, _defined(p_t), _defined(p_w), len(diffs))


def _defined(p: float) -> float | None:
    return p if math.isfinite(p) else None


def verdict(test: PairedTest, alpha: float = ALPHA) -> Verdict:
    """better / worse when the paired t-test rejects equality at alpha, by the sign of delta;
    same otherwise (including when there are too few pairs to test)."""
    if test.p_ttest is None or test.p_ttest >= alpha or test.delta == 0:
        return "same"
    return "better" if test.delta > 0 else "worse"


def first_step_reaching(curve: Sequence[tuple[int, float]], target: float) -> int | None:
    """The first step of a (step, accuracy) curve whose accuracy is at least target, else None."""
    return next((step for step, acc in curve if acc >= target), None)


def median_steps(steps: Sequence[int | None]) -> int | None:
    """The lower median of per-seed steps-to-target, a seed that never got there counting as
    infinitely slow; None when the median itself never got there (or there are no seeds)."""
    if not steps:
        return None
    ordered = sorted(steps, key=lambda s: math.inf if s is None else s)
    return ordered[(len(ordered) - 1) // 2]
