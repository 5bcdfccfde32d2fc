"""The halving protocol's hurdle inside a search: thresholds from finished rounds, applied by workers."""
from __future__ import annotations

import json
from pathlib import Path

from controller.store import RunStore, RuleRecord, SampleRecord
from nos_symbolic.evaluate import EvalConfig, evaluate_job
from nos_symbolic.result import EvalResult


def _rule(n: int) -> RuleRecord:
    return RuleRecord(key=f"k{n}", fingerprint=f"f{n}", scale_fingerprint=f"s{n}", text=f"g * {n}",
                      canonical=f"{n}*g", latex=f"{n} g", seed=0)


def test_recent_val_curves_come_from_sampled_rules_newest_first(tmp_path: Path):
    with RunStore.open(tmp_path) as store:
        for n in range(4):
            status = "rejected" if n == 2 else "ok"
            store.record_evaluation(_rule(n), EvalResult(status=status, reward=0.5, val_curve=((32, n / 10),)), [])
        # rule 3 is stored but no recorded sample points at it yet (its round is still running)
        store.record_samples([SampleRecord(i, "random", (i,), f"k{n}", 0.5, False)
                              for i, n in enumerate((0, 1, 2, 0))])
        assert store.recent_val_curves(10) == [((32, 0.0),), ((32, 0.1),)]
        assert store.recent_val_curves(1) == [((32, 0.0),)]


def test_a_stored_val_curve_round_trips(tmp_path: Path):
    result = EvalResult(status="hurdled", reward=0.4, val_curve=((32, 0.4), (64, 0.5)))
    with RunStore.open(tmp_path) as store:
        store.record_evaluation(_rule(1), result, [])
        assert store.lookup("k1", None).result.val_curve == ((32, 0.4), (64, 0.5))


def test_the_worker_applies_the_hurdle_from_recent_curves():
    config = EvalConfig(protocol="halving", hurdle_quantile=0.5, epochs=2, lrs=(1e-2, 1e-1)).to_dict()
    easy = evaluate_job({"rule": "adam", "config": config, "hurdle_curves": [[[32, 0.3]]] * 12})
    hard = evaluate_job({"rule": "adam", "config": config, "hurdle_curves": [[[32, 0.99]]] * 12})
    few = evaluate_job({"rule": "adam", "config": config, "hurdle_curves": [[[32, 0.99]]] * 3})
    assert easy.status == "ok" and few.status == "ok"  # too few curves: no hurdle yet
    assert easy.reward == few.reward
    assert hard.status == "hurdled"
    (step, acc), = hard.val_curve
    assert step == 32 and hard.reward == acc < 0.99
    assert hard.steps < easy.steps


def test_the_default_is_halving_with_its_knobs_recorded():
    from nos_symbolic.tasks.protocol import DEFAULT_HALVING

    config = EvalConfig()
    assert (config.protocol, config.epochs, config.hurdle_quantile) == ("halving", 3, 0.25)
    assert config.halving_knobs() == DEFAULT_HALVING
    assert EvalConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert (EvalConfig(protocol="full").epochs, EvalConfig(protocol="full").hurdle_quantile) == (5, None)
    mine = EvalConfig(halving=(("tail", 2),))
    assert mine.halving_knobs().tail == 2 and EvalConfig(hurdle_quantile=None).hurdle_quantile is None


def test_a_hurdle_needs_the_halving_protocol():
    import pytest

    from nos_symbolic.errors import NosError

    with pytest.raises(NosError, match="hurdle_quantile applies to protocol halving"):
        EvalConfig(protocol="full", hurdle_quantile=0.5)
    with pytest.raises(NosError, match="halving knobs apply to protocol halving only"):
        EvalConfig(protocol="full", halving=(("tail", 2),))
    with pytest.raises(NosError, match="knobs are not valid"):
        EvalConfig(halving=(("tails", 2),))
    with pytest.raises(NosError, match="hurdle_quantile must be a number from 0 to 1"):
        EvalConfig(protocol="halving", hurdle_quantile=1.5)
    with pytest.raises(NosError, match="unknown protocol 'fast'"):
        EvalConfig(protocol="fast")
