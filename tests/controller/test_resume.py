"""Resuming a search: after a crash at any moment, a missing checkpoint or Ctrl-C, the run continues
exactly as an uninterrupted one and loses or repeats no evaluation; a foreign checkpoint, a missing
store, a store of an earlier release or another search on the same directory is refused untouched.

Evaluations are faked (_jobs.fake_evaluate: a reward from the rule's text) so the tests exercise the
loop, the store and the checkpoint, not training."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import _jobs
from controller.search import CHECKPOINT_FILE, CONFIG_FILE, Search, SearchConfig
from controller.store import RunStore, StoreError
from nos_cli import main
from nos_symbolic.errors import NosError

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# `nos` in a subprocess, with the fake evaluation.
RUNNER = "import sys, _jobs; _jobs.patch_evaluation(); from nos_cli import main; sys.exit(main(sys.argv[1:]))"
SEARCH_ARGS = ["search", "--strategy", "random", "--budget", "8", "--workers", "0", "--seed", "3",
               "--round-size", "2"]


class Crash(Exception):
    """Stands for kill -9: the search stops where it is, with nothing written on the way out."""


@pytest.fixture(autouse=True)
def fake_evaluation(monkeypatch):
    import nos_symbolic.evaluate as evaluate

    monkeypatch.setattr(evaluate, "evaluate_job", _jobs.fake_evaluate)
    monkeypatch.setattr(evaluate, "warm_worker", _jobs.no_warm_up)


def config(**overrides) -> SearchConfig:
    base = dict(strategy="random", budget=6, workers=0, seed=3, round_size=2)
    base.update(overrides)
    return SearchConfig(**base)


def record(run_dir: Path) -> tuple:
    """Everything a run recorded: samples, rules and controller updates."""
    with RunStore.open_readonly(run_dir) as store:
        samples = [(s.idx, s.tokens, s.rule_key, s.reward, s.cache_hit) for s in store.samples()]
        rules = sorted((r.key, r.result.status, r.result.reward) for r in store.rules())
        return samples, rules, list(store.updates())


def run(run_dir: Path, cfg: SearchConfig, resume: bool = False, on_progress=lambda p: None) -> None:
    search = Search(cfg, run_dir, resume=resume)
    try:
        search.run(on_progress)
    finally:
        search.close()


_STRAIGHT: dict[str, tuple] = {}


def _straight(tmp_path_factory, strategy: str) -> tuple:
    if strategy not in _STRAIGHT:
        run_dir = tmp_path_factory.mktemp("straight") / "run"
        run(run_dir, config(strategy=strategy))
        _STRAIGHT[strategy] = record(run_dir)
    return _STRAIGHT[strategy]


@pytest.fixture
def straight(tmp_path_factory) -> tuple:
    """The reference: the random search with no interruption."""
    return _straight(tmp_path_factory, "random")


@pytest.fixture
def straight_ppo(tmp_path_factory) -> tuple:
    """The reference for PPO, the strategy whose state learns and logs update statistics."""
    return _straight(tmp_path_factory, "ppo")


def crash_after_evaluations(n: int):
    def on_progress(p) -> None:
        if p.evaluations >= n:
            raise Crash

    return on_progress


@pytest.mark.parametrize("evaluations", [1, 4])  # mid-round, the last of a round
def test_a_crash_mid_round_then_resume_is_exact(tmp_path, straight, evaluations):
    with pytest.raises(Crash):
        run(tmp_path, config(), on_progress=crash_after_evaluations(evaluations))
    run(tmp_path, config(), resume=True)
    assert record(tmp_path) == straight


def test_ppo_resumes_exactly_after_a_crash_mid_round(tmp_path, straight_ppo):
    with pytest.raises(Crash):
        run(tmp_path, config(strategy="ppo"), on_progress=crash_after_evaluations(3))
    run(tmp_path, config(strategy="ppo"), resume=True)
    assert record(tmp_path) == straight_ppo and straight_ppo[2]  # updates included


@pytest.mark.parametrize("crash_at", ["record_round", "_save_checkpoint"])
def test_a_crash_between_the_store_and_the_checkpoint_then_resume_is_exact(tmp_path, straight_ppo, monkeypatch,
                                                                          crash_at):
    target = RunStore if crash_at == "record_round" else Search
    real = getattr(target, crash_at)
    calls = []

    def second_call_crashes(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            if crash_at == "record_round":
                real(self, *args, **kwargs)  # the round is in the store; its checkpoint is not
            raise Crash
        return real(self, *args, **kwargs)

    monkeypatch.setattr(target, crash_at, second_call_crashes)
    with pytest.raises(Crash):
        run(tmp_path, config(strategy="ppo"))
    monkeypatch.setattr(target, crash_at, real)
    with RunStore.open_readonly(tmp_path) as store:
        assert store.progress.rounds == 2  # the store has the second round ...
    assert torch.load(tmp_path / CHECKPOINT_FILE, weights_only=False)["rounds"] == 1  # ... its checkpoint not
    run(tmp_path, config(strategy="ppo"), resume=True)
    assert record(tmp_path) == straight_ppo


def test_a_missing_checkpoint_is_rebuilt_from_the_store(tmp_path, straight):
    run(tmp_path, config(budget=4))
    (tmp_path / CHECKPOINT_FILE).unlink()
    search = Search(config(), tmp_path, resume=True)
    try:
        assert search.notes and "replaying 2 rounds" in search.notes[0]
        search.run()
    finally:
        search.close()
    assert record(tmp_path) == straight


def test_a_foreign_checkpoint_is_refused_and_nothing_changes(tmp_path):
    run(tmp_path / "a", config(budget=2))
    run(tmp_path / "b", config(budget=4))
    (tmp_path / "a" / CHECKPOINT_FILE).write_bytes((tmp_path / "b" / CHECKPOINT_FILE).read_bytes())
    before = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    with pytest.raises(NosError, match="controller.pt belongs to another run.*move .* away"):
        Search(config(budget=8), tmp_path / "a", resume=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()} == before


def test_a_checkpoint_ahead_of_its_store_is_refused(tmp_path):
    run(tmp_path, config(budget=4))
    ckpt = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=False)
    torch.save({**ckpt, "rounds": ckpt["rounds"] + 1}, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(NosError, match="ahead of the run's store"):
        Search(config(), tmp_path, resume=True)


def test_a_missing_store_is_refused(tmp_path, capsys):
    run(tmp_path, config(budget=2))
    (tmp_path / "store.sqlite").unlink()
    with pytest.raises(NosError, match="no store.sqlite: the run's evaluations are gone"):
        Search(config(), tmp_path, resume=True)
    assert not (tmp_path / "store.sqlite").exists()


def test_a_run_of_an_earlier_store_schema_is_refused_naming_its_version(tmp_path):
    run(tmp_path, config(budget=2))
    db = sqlite3.connect(tmp_path / "store.sqlite", isolation_level=None)
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(StoreError, match="written by store schema version 3 .*reads version 4"):
        Search(config(budget=4), tmp_path, resume=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_resume_takes_the_recorded_settings_and_records_a_new_budget(tmp_path, straight, capsys):
    run(tmp_path, config(budget=4, round_size=2))
    assert main(["search", "--run-dir", str(tmp_path), "--resume", "--top", "1"]) == 0  # budget 4: nothing to do
    assert record(tmp_path)[0] == [s for s in straight[0] if s[0] < len(record(tmp_path)[0])]
    assert main(["search", "--run-dir", str(tmp_path), "--resume", "--budget", "6", "--workers", "0"]) == 0
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["budget"] == 6
    with RunStore.open_readonly(tmp_path) as store:
        assert store.get_meta("config")["budget"] == 6
    assert record(tmp_path) == straight
    capsys.readouterr()
    assert main(["search", "--run-dir", str(tmp_path), "--resume", "--seed", "0", "--round-size", "2"]) == 2
    assert capsys.readouterr().err == (
        f"error: refusing to resume {tmp_path} with a different config: seed: 3 in the run, 0 given (only address, "
        f"backend, budget, cpus_per_eval, gpus_per_eval, timeout, workers may change on resume)\n")


def test_a_second_search_on_a_run_directory_is_refused_naming_the_first(tmp_path, capsys):
    run(tmp_path, config(budget=2))
    first = Search(config(), tmp_path, resume=True)  # holds the run directory's lock
    try:
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        assert main(["search", "--run-dir", str(tmp_path), "--resume"]) == 2
        assert f"is in use by process {os.getpid()} (nos search)" in capsys.readouterr().err
        assert main(["top", str(tmp_path), "--json"]) == 0  # reading goes on while a search holds the run
        assert json.loads(capsys.readouterr().out)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    finally:
        first.close()


def _nos(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)]), "NOS_TEST_EVAL_SECONDS": "0.1",
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", RUNNER, *args], cwd=REPO, env=env, **kwargs)


def _wait_for_evaluations(run_dir: Path, n: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            with RunStore.open_readonly(run_dir) as store:
                if store.n_evaluations() >= n:
                    return
        except StoreError:  # not there yet, or still being created
            pass
    raise AssertionError(f"the search did not reach {n} evaluations")


def test_kill_9_twice_then_resume_loses_and_repeats_nothing(tmp_path):
    run_dir = tmp_path / "run"
    args = SEARCH_ARGS + ["--run-dir", str(run_dir)]
    for n, extra in ((2, []), (5, ["--resume"])):
        proc = _nos(args + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_evaluations(run_dir, n, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert main(args[:1] + ["--run-dir", str(run_dir), "--resume"]) == 0  # every setting from config.json
    run(tmp_path / "straight", config(budget=8))
    assert record(run_dir) == record(tmp_path / "straight")


def test_ctrl_c_keeps_what_finished_and_prints_the_resume_command(tmp_path):
    run_dir = tmp_path / "run"
    proc = _nos(SEARCH_ARGS + ["--run-dir", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_evaluations(run_dir, 3, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.decode().strip().splitlines()
    assert lines[-1] == f"resume it with: nos search --run-dir {run_dir} --resume"
    assert lines[-2].startswith("interrupted: ") and lines[-2].endswith(f"the run is in {run_dir}")
    with RunStore.open_readonly(run_dir) as store:
        assert store.n_evaluations() >= 3
    assert main(["search", "--run-dir", str(run_dir), "--resume"]) == 0
    run(tmp_path / "straight", config(budget=8))
    assert record(run_dir) == record(tmp_path / "straight")
