"""End-to-end searches with a tiny budget: dedup, determinism, resume, crash recovery, refusals."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controller.search import CHECKPOINT_FILE, CONFIG_FILE, Search, SearchConfig
from controller.store import RunStore
from nos_cli import main
from nos_symbolic.errors import NosError
from nos_symbolic.evaluate import EvalConfig

FAST_EVAL = EvalConfig(lrs=(0.05,), epochs=1)


def config(**overrides) -> SearchConfig:
    base = dict(strategy="random", budget=4, workers=0, seed=3, round_size=2, eval=FAST_EVAL)
    base.update(overrides)
    return SearchConfig(**base)


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


def test_cached_rules_are_never_trained_twice(tmp_path):
    _, samples, rules = run_search(tmp_path / "run", config(budget=6, round_size=3))
    keys = [s[2] for s in samples]
    assert len(keys) > len(set(keys)) or len(samples) == len(rules)
    with RunStore.open(tmp_path / "run") as store:
        hits = [s for s in store.samples() if s.cache_hit]
        for s in hits:
            assert store.lookup(s.rule_key, None) is not None


@pytest.mark.parametrize("strategy", ["ppo", "evolution"])
def test_same_seed_same_search_whatever_the_workers(tmp_path, strategy):
    cfg = config(strategy=strategy, budget=4, round_size=2)
    serial = run_search(tmp_path / "a", cfg)
    parallel = run_search(tmp_path / "b", config(strategy=strategy, budget=4, round_size=2, workers=2))
    assert serial[1] == parallel[1] and serial[2] == parallel[2]


@pytest.mark.parametrize("first_budget", [2, 3])  # ends on a round boundary / in the middle of a round
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, first_budget):
    straight = run_search(tmp_path / "straight", config(budget=6, round_size=2))
    run_search(tmp_path / "split", config(budget=first_budget, round_size=2))
    resumed = run_search(tmp_path / "split", config(budget=6, round_size=2), resume=True)
    assert resumed[1] == straight[1]
    assert resumed[2] == straight[2]


def test_resume_with_a_different_config_is_refused_naming_the_difference(tmp_path):
    run_search(tmp_path / "run", config(budget=2))
    with pytest.raises(NosError, match="seed: 3 in the run, 4 given"):
        Search(config(seed=4), tmp_path / "run", resume=True)
    with pytest.raises(NosError, match="already holds a run"):
        Search(config(), tmp_path / "run")
    with pytest.raises(NosError, match="nothing to resume"):
        Search(config(), tmp_path / "empty", resume=True)


def test_kill_9_then_resume_loses_and_repeats_nothing(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "nos_cli", "search", "--strategy", "random", "--budget", "10", "--workers", "0",
           "--seed", "3", "--round-size", "4", "--lrs", "0.05", "--epochs", "1", "--run-dir", str(run_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until some evaluations are stored, then kill mid-run
        time.sleep(0.5)
        if (run_dir / "store.sqlite").exists():
            with RunStore.open(run_dir) as store:
                if store.n_evaluations() >= 3:
                    break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert main(cmd[3:] + ["--resume"]) == 0
    with RunStore.open(run_dir) as store:
        assert store.n_evaluations() == 10
        samples = list(store.samples())
        assert [s.idx for s in samples] == list(range(len(samples)))
    straight = run_search(tmp_path / "straight", config(budget=10, round_size=4))
    assert straight[0].evaluations == 10
    assert [(s.idx, s.tokens, s.rule_key, s.reward) for s in samples] == straight[1]


def test_an_evaluation_that_raises_is_recorded_as_error_and_the_search_goes_on(tmp_path, monkeypatch):
    import nos_symbolic.evaluate as evaluate

    def explode(payload):
        raise RuntimeError("boom")

    monkeypatch.setattr(evaluate, "evaluate_job", explode)
    progress, samples, rules = run_search(tmp_path / "run", config(budget=3))
    statuses = {status for status, _ in rules.values()}
    assert progress.evaluations == 3 and "error" in statuses


def test_nos_top_json(tmp_path, capsys):
    run_search(tmp_path / "run", config(budget=3))
    assert main(["top", str(tmp_path / "run"), "-k", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert 1 <= len(rows) <= 2
    assert set(rows[0]) >= {"rule", "key", "reward", "val_acc", "test_acc", "lr", "status"}
    assert rows == sorted(rows, key=lambda r: -r["reward"])


def test_nos_top_on_a_missing_run_is_exit_2(tmp_path, capsys):
    assert main(["top", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_ppo_logs_each_update(tmp_path):
    run_search(tmp_path / "run", config(strategy="ppo", budget=4, round_size=2))
    lines = [json.loads(line) for line in (tmp_path / "run" / "updates.jsonl").read_text().splitlines()]
    assert lines and all({"round", "pg_loss", "entropy", "approx_kl", "clipfrac"} <= set(line) for line in lines)
