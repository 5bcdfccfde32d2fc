"""nos confirm: the run's best distinct rules and the baselines on fresh shared seeds, at the search's
length and a longer one, stored as they finish, resumable after kill -9, summarised with paired tests."""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from _studies import TINY, make_run
from controller.store import RunStore
from controller.studies.confirm import confirm
from controller.studies.contenders import BASELINES, baseline_key, study_seeds
from controller.studies.runner import Workers
from controller.studies.summary import score
from nos_symbolic.dsl import to_dsl
from nos_symbolic.errors import NosError
from nos_symbolic.evaluate import evaluate, task_for
from nos_symbolic.rule import parse_rule

SERIAL = Workers(workers=0)
LONG = 2  # the confirmation's length in these tests (the tiny run searched with 1 epoch)
N = 2 + len(BASELINES)  # contenders: the run's top 2 and the baselines
RULES = [
    ("e^(sign(g) * sign(m)) * g", 0.95, "ok"),  # PowerSign rediscovered: trained once, as the baseline
    ("m#same", 0.93, "ok"),
    ("g + m#same", 0.92, "ok"),  # the same behaviour as m (its fingerprint): counted once
    ("sign(m) * abs(g)", 0.91, "ok"),
    ("g", 0.99, "diverged"),  # never trained to the end
]


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NOS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory):
    """A tiny run confirmed with its top 2 and 2 seeds: (run_dir, report)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        run = make_run(tmp_path_factory.mktemp("run") / "r", RULES)
        return run, confirm(run, top=2, seeds=2, workers=SERIAL, epochs=LONG)


def test_picks_the_best_distinct_rules_and_every_baseline(confirmed):
    run, report = confirmed
    (summaries,) = report.summaries.values()
    search = [s.rule for s in summaries if s.source == "search"]
    assert sorted(search) == sorted([to_dsl(parse_rule("m")), to_dsl(parse_rule("sign(m) * abs(g)"))])
    assert sorted(s.rule for s in summaries if s.source == "baseline") == sorted(BASELINES)
    assert report.seeds == [1, 2]  # fresh: the search evaluated with seed 0


def test_every_training_is_stored_once_and_pairs_by_seed(confirmed):
    run, report = confirmed
    with RunStore.open_readonly(run) as store:
        rows = store.trainings("confirm")
    assert len(rows) == N * 2 and len({(r.key, r.seed) for r in rows}) == N * 2
    assert {r.task for r in rows} == {"mnist1d"}
    adam = next(r for r in rows if r.key == baseline_key("adam") and r.seed == 1)
    fresh = evaluate("adam", replace(TINY, seed=1))
    assert adam.test_acc == fresh.test_acc and adam.val_acc == fresh.val_acc  # same weights, batches
    # one epoch, one lr: no lr search; the curve's point is the run's end
    assert adam.metrics["val_curve"] == [list(point) for point in fresh.val_curve]
    assert [step for step, _ in fresh.val_curve] == [fresh.steps]


def test_summaries_are_paired_differences_to_the_best_baseline(confirmed):
    run, report = confirmed
    (summaries,) = report.summaries.values()
    with RunStore.open_readonly(run) as store:
        rows = store.trainings(f"confirm@{LONG}")
    by_key = {}
    for r in rows:
        by_key.setdefault(r.key, {})[r.seed] = score(r)
    best = max((baseline_key(n) for n in BASELINES), key=lambda k: statistics.fmean(by_key[k].values()))
    for s in summaries:
        diffs = [by_key[s.key][seed] - by_key[best][seed] for seed in (1, 2)]
        assert s.paired.delta == pytest.approx(statistics.fmean(diffs))
        assert s.test.mean == pytest.approx(statistics.fmean(by_key[s.key].values()))
        assert s.verdict in ("better", "same", "worse")
    assert [s.test.mean for s in summaries] == sorted((s.test.mean for s in summaries), reverse=True)
    adam = next(s for s in summaries if s.rule == "adam")
    assert adam.steps_to_target == LONG * task_for(TINY).steps_per_epoch  # its own final accuracy: last step


def test_both_lengths_are_trained_and_reported_side_by_side(confirmed):
    run, report = confirmed
    assert (report.epochs, report.beside_epochs) == (LONG, 1)
    (short,) = report.beside.values()
    (long,) = report.summaries.values()
    assert {s.key for s in short} == {s.key for s in long}
    with RunStore.open_readonly(run) as store:
        for row in store.trainings(f"confirm@{LONG}"):
            if row.status == "ok":
                assert row.metrics["steps"] >= LONG * task_for(TINY).steps_per_epoch
    assert "adam-cosine" in {s.rule for s in long}  # a practitioner's Adam, beside constant-lr Adam


def test_the_cli_shows_both_lengths_and_flags_flips(confirmed, capsys):
    import json

    from nos_cli import main

    run, _ = confirmed
    assert main(["confirm", str(run), "--top", "2", "--seeds", "2", "--workers", "0", "--epochs", str(LONG),
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["epochs"] for r in rows} == {LONG} and {r["search_epochs"] for r in rows} == {1}
    for r in rows:
        assert r["search_test_acc_mean"] is not None
        assert r["flipped"] == (r["search_verdict"] != r["verdict"])
    assert main(["confirm", str(run), "--top", "2", "--seeds", "2", "--workers", "0", "--epochs", str(LONG)]) == 0
    out = capsys.readouterr().out
    assert f"after {LONG} epochs" in out and "at the search's length (1 epochs" in out and "@1" in out


def test_a_second_call_resumes_and_more_seeds_extend(confirmed):
    run, _ = confirmed
    with RunStore.open_readonly(run) as store:
        before = {(r.key, r.seed): r.created_at for r in store.trainings("confirm")}
    again = confirm(run, top=2, seeds=2, workers=SERIAL, epochs=LONG)
    assert again.progress.done == 0 and again.progress.stored == N * 2
    more = confirm(run, top=2, seeds=3, workers=SERIAL, epochs=LONG)
    assert more.progress.done == N and more.seeds == [1, 2, 3]
    with RunStore.open_readonly(run) as store:
        after = {(r.key, r.seed): r.created_at for r in store.trainings("confirm")}
    assert {k: after[k] for k in before} == before and len(after) == N * 3


@pytest.mark.parametrize("kwargs, message", [
    ({"top": 0}, "top must be at least 1"),
    ({"seeds": 0}, "seeds must be at least 1"),
])
def test_bad_numbers_store_nothing(tmp_path, kwargs, message):
    run = make_run(tmp_path / "r", RULES)
    with pytest.raises(NosError, match=message):
        confirm(run, workers=SERIAL, **kwargs)
    with RunStore.open_readonly(run) as store:
        assert store.trainings() == [] and store.schema_version >= 1


def test_a_run_without_trained_rules_is_refused(tmp_path):
    run = make_run(tmp_path / "r", [("g", 0.5, "diverged"), ("m", 0.0, "rejected")])
    with pytest.raises(NosError, match="no rule that trained to the end"):
        confirm(run, workers=SERIAL)
    with RunStore.open_readonly(run) as store:
        assert store.trainings() == []
    with pytest.raises(NosError, match="not found"):
        confirm(tmp_path / "missing")


def test_seeds_skip_the_search_seed():
    assert study_seeds(3, 0) == [1, 2, 3]
    assert study_seeds(3, 2) == [1, 3, 4]


def test_kill_9_then_resume_repeats_and_loses_nothing(tmp_path):
    run = make_run(tmp_path / "r", RULES[1:2])
    command = [sys.executable, "-m", "nos_cli", "confirm", str(run), "--top", "1", "--seeds", "2",
               "--workers", "1", "--epochs", str(LONG)]
    total = 2 * 2 * (1 + len(BASELINES))  # two lengths x two seeds x contenders
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if (run / "store.sqlite").is_file():
                with RunStore.open_readonly(run) as store:
                    if len(store.trainings()) >= 3:
                        break
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # the command and its worker, mid-study
    finally:
        proc.wait()
    with RunStore.open_readonly(run) as store:
        before = {(r.study, r.key, r.seed): r for r in store.trainings()}
    assert 3 <= len(before) < total
    confirm(run, top=1, seeds=2, workers=SERIAL, epochs=LONG)
    with RunStore.open_readonly(run) as store:
        after = {(r.study, r.key, r.seed): r for r in store.trainings()}
    assert len(after) == total and {k: after[k] for k in before} == before
    redone = next(r for k, r in after.items() if k not in before)
    length = {} if redone.study == "confirm" else {"epochs": LONG, "hurdle_quantile": None}
    fresh = evaluate(redone.rule, replace(TINY, seed=redone.seed, **length))
    assert (redone.status, redone.test_acc) == (fresh.status, fresh.test_acc)
