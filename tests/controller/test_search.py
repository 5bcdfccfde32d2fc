"""End-to-end searches with a tiny budget: dedup, determinism, resume, refusals. (Crashes, kills and
Ctrl-C: test_resume.py.)"""
import json
from pathlib import Path

import pytest

import _jobs
from controller.search import CHECKPOINT_FILE, CONFIG_FILE, Search, SearchConfig
from controller.store import RunStore
from nos_cli import main
from nos_symbolic.errors import NosError, SettingError
from nos_symbolic.evaluate import EvalConfig

FAST_EVAL = EvalConfig(lrs=(0.05,), epochs=1)


def config(**overrides) -> SearchConfig:
    base = dict(strategy="random", budget=4, workers=0, seed=3, round_size=2, eval=FAST_EVAL)
    base.update(overrides)
    return SearchConfig(**base)


@pytest.fixture
def fake(monkeypatch):
    """Evaluations faked (a reward from the rule's text): tests of the loop, not of training."""
    import nos_symbolic.evaluate as evaluate

    monkeypatch.setattr(evaluate, "evaluate_job", _jobs.fake_evaluate)
    monkeypatch.setattr(evaluate, "warm_worker", _jobs.no_warm_up)


def run_search(run_dir: Path, cfg: SearchConfig, resume: bool = False):
    search = Search(cfg, run_dir, resume=resume)
    try:
        progress = search.run()
        samples = [(s.idx, s.tokens, s.rule_key, s.reward) for s in search.store.samples()]
        rules = {r.key: (r.result.status, r.result.reward) for r in search.store.rules()}
    finally:
        search.close()
    return progress, samples, rules


def test_a_tiny_search_fills_the_store_and_the_run_dir(tmp_path):
    progress, samples, rules = run_search(tmp_path / "run", config())
    assert progress.evaluations == 4  # the budget counts trainings, not samples
    assert [s[0] for s in samples] == list(range(len(samples)))  # gap-free sample indices
    assert all(s[2] in rules for s in samples)  # every sample points at a stored rule
    trained = [k for k, (status, _) in rules.items() if status != "rejected"]
    assert len(trained) == 4
    assert (tmp_path / "run" / CONFIG_FILE).exists() and (tmp_path / "run" / CHECKPOINT_FILE).exists()
    assert json.loads((tmp_path / "run" / CONFIG_FILE).read_text())["strategy"] == "random"


def test_cached_rules_are_never_trained_twice(tmp_path, fake):
    _, samples, rules = run_search(tmp_path / "run", config(budget=6, round_size=3))
    keys = [s[2] for s in samples]
    with RunStore.open(tmp_path / "run") as store:
        variants = store.variants()  # decayed variants of promoted rules: trained, never sampled
    assert len(keys) > len(set(keys)) or len(samples) == len(rules) - len(variants)
    with RunStore.open(tmp_path / "run") as store:
        hits = [s for s in store.samples() if s.cache_hit]
        for s in hits:
            assert store.lookup(s.rule_key, None) is not None


@pytest.mark.parametrize("strategy", ["ppo", "evolution"])
def test_same_seed_same_search_whatever_the_workers(tmp_path, fake, strategy):
    cfg = config(strategy=strategy, budget=4, round_size=2)
    serial = run_search(tmp_path / "a", cfg)
    parallel = run_search(tmp_path / "b", config(strategy=strategy, budget=4, round_size=2, workers=2))
    assert serial[1] == parallel[1] and serial[2] == parallel[2]


@pytest.mark.parametrize("first_budget", [2, 3])  # ends on a round boundary / in the middle of a round
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, fake, first_budget):
    straight = run_search(tmp_path / "straight", config(budget=6, round_size=2))
    run_search(tmp_path / "split", config(budget=first_budget, round_size=2))
    resumed = run_search(tmp_path / "split", config(budget=6, round_size=2), resume=True)
    assert resumed[1] == straight[1]
    assert resumed[2] == straight[2]


def test_resume_with_a_different_config_is_refused_naming_the_difference(tmp_path, fake):
    run_search(tmp_path / "run", config(budget=2))
    with pytest.raises(NosError, match="seed: 3 in the run, 4 given"):
        Search(config(seed=4), tmp_path / "run", resume=True)
    with pytest.raises(SettingError, match="already holds a run; set resume to continue it") as refused:
        Search(config(), tmp_path / "run")
    assert refused.value.settings == ("run_dir", "resume")
    with pytest.raises(NosError, match="nothing to resume"):
        Search(config(), tmp_path / "empty", resume=True)


def test_an_evaluation_that_raises_is_recorded_as_error_and_the_search_goes_on(tmp_path, monkeypatch):
    import nos_symbolic.evaluate as evaluate

    def explode(payload):
        raise RuntimeError("boom")

    monkeypatch.setattr(evaluate, "evaluate_job", explode)
    progress, samples, rules = run_search(tmp_path / "run", config(budget=3))
    statuses = {status for status, _ in rules.values()}
    assert progress.evaluations == 3 and "error" in statuses


def test_nos_top_json(tmp_path, fake, capsys):
    run_search(tmp_path / "run", config(budget=3))
    assert main(["top", str(tmp_path / "run"), "-k", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert 1 <= len(rows) <= 2
    assert set(rows[0]) >= {"rule", "key", "reward", "val_acc", "test_acc", "lr", "status"}
    assert rows == sorted(rows, key=lambda r: -r["reward"])


def test_nos_top_on_a_missing_run_is_exit_2(tmp_path, capsys):
    assert main(["top", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_ppo_records_each_update_in_the_store(tmp_path, fake):
    run_search(tmp_path / "run", config(strategy="ppo", budget=4, round_size=2))
    with RunStore.open_readonly(tmp_path / "run") as store:
        updates = list(store.updates())
    assert [r for r, _, _ in updates] == sorted(r for r, _, _ in updates) and {r for r, _, _ in updates} == {0, 1}
    assert all({"pg_loss", "entropy", "approx_kl", "clipfrac"} <= set(stats) for _, _, stats in updates)
    assert not (tmp_path / "run" / "updates.jsonl").exists()
