"""Statistics of repeated trainings: intervals, paired tests, verdicts, steps-to-target."""
from __future__ import annotations

import math
import statistics

import pytest
from scipy import stats as st

from nos_symbolic.stats import (
    MeanCI,
    PairedTest,
    first_step_reaching,
    mean_ci,
    median_steps,
    paired_test,
    verdict,
)


def test_mean_ci_is_the_t_interval():
    xs = [0.90, 0.92, 0.91, 0.95, 0.89]
    ci = mean_ci(xs)
    half = 2.7764451051977987 * statistics.stdev(xs) / math.sqrt(5)  # t_{0.975, 4}
    assert ci.mean == pytest.approx(0.914) and ci.n == 5
    assert ci.low == pytest.approx(0.914 - half) and ci.high == pytest.approx(0.914 + half)
    low, high = st.t.interval(0.95, 4, loc=statistics.fmean(xs), scale=st.sem(xs))
    assert (ci.low, ci.high) == pytest.approx((low, high))


def test_mean_ci_degenerate_cases():
    assert mean_ci([0.5]) == MeanCI(0.5, None, None, 1)
    same = mean_ci([0.7, 0.7, 0.7])
    assert same.low == same.high == pytest.approx(0.7)
    with pytest.raises(ValueError):
        mean_ci([])


def test_paired_test_matches_scipy():
    a = [0.91, 0.93, 0.90, 0.94, 0.92]
    b = [0.90, 0.91, 0.90, 0.92, 0.90]
    t = paired_test(a, b)
    assert t.n == 5 and t.delta == pytest.approx(0.014)
    assert t.p_ttest == pytest.approx(st.ttest_rel(a, b).pvalue)
    assert t.p_wilcoxon == pytest.approx(st.wilcoxon([x - y for x, y in zip(a, b)]).pvalue)
    assert verdict(t) == "better"
    assert verdict(paired_test(b, a)) == "worse"


def test_paired_test_degenerate_cases():
    assert paired_test([0.5], [0.4]) == PairedTest(pytest.approx(0.1), None, None, 1)
    assert paired_test([0.5, 0.6], [0.5, 0.6]) == PairedTest(0.0, 1.0, 1.0, 2)
    constant = paired_test([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])  # identical nonzero differences
    assert constant.p_ttest == 0.0 and verdict(constant) == "better"
    with pytest.raises(ValueError, match="length"):
        paired_test([0.1, 0.2], [0.1])


def test_verdict_needs_a_test_and_significance():
    assert verdict(PairedTest(0.02, None, None, 1)) == "same"
    assert verdict(PairedTest(0.02, 0.2, 0.3, 5)) == "same"
    assert verdict(PairedTest(-0.02, 0.01, 0.06, 5)) == "worse"


def test_wilcoxon_cannot_pass_005_with_five_pairs():
    t = paired_test([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.0, 0.0, 0.0, 0.0])
    assert t.p_wilcoxon == pytest.approx(0.0625)


def test_steps_to_target():
    curve = [(40, 0.70), (80, 0.85), (120, 0.90), (160, 0.88)]
    assert first_step_reaching(curve, 0.85) == 80
    assert first_step_reaching(curve, 0.95) is None
    assert first_step_reaching([], 0.1) is None
    assert median_steps([80, None, 120]) == 120
    assert median_steps([80, None, None]) is None
    assert median_steps([40, 80, 120, 160]) == 80  # the lower median
    assert median_steps([]) is None
