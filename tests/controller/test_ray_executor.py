"""The Ray backend: every job comes back as a Completion whatever happens to its actor, and a search on
Ray records every rule once and finds exactly what the local backend finds.

Ray starts at most twice: once owned by an executor (which must stop it), then one shared instance
for the rest of the module. Without Ray installed, only the two tests that need no Ray run.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import _jobs
import _ray_jobs
from controller.executors import Completion, Executor, ExecutorError
from controller.ray_executor import RayExecutor, connect_ray
from controller.search import Search, SearchConfig
from nos_cli import main
from nos_symbolic.errors import SettingError
from nos_symbolic.evaluate import EvalConfig

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed (pip install 'nos-symbolic[ray]')")
FAST_EVAL = EvalConfig(lrs=(0.05,), epochs=1)


def drain(ex: Executor, n: int, limit: float = 60.0) -> dict[int, Completion]:
    """Poll until `n` completions arrived; fail rather than hang if they do not."""
    out: dict[int, Completion] = {}
    end = time.monotonic() + limit
    while len(out) < n:
        assert time.monotonic() < end, f"only {len(out)} of {n} jobs finished in {limit}s"
        for c in ex.poll(timeout=1.0):
            assert c.job_id not in out, f"job {c.job_id} completed twice"
            out[c.job_id] = c
    assert ex.in_flight() == 0
    return out


def test_without_ray_the_search_refuses_before_writing_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    run_dir = tmp_path / "run"
    argv = ["search", "--backend", "ray", "--budget", "1", "--workers", "1", "--run-dir", str(run_dir),
            "--lrs", "0.05", "--epochs", "1"]
    assert main(argv) == 2
    assert capsys.readouterr().err == "error: the ray backend needs Ray: pip install 'nos-symbolic[ray]'\n"
    assert not run_dir.exists()  # nothing to clean up before the same command runs with Ray installed


def test_importing_the_backends_does_not_import_ray():
    code = ("import sys, controller.search, controller.ray_executor, controller.process_executor, nos_symbolic; "
            "print('ray' in sys.modules)")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"


def test_negative_resources_are_refused_naming_the_settings():
    with pytest.raises(SettingError) as err:  # before Ray is needed: no instance starts
        RayExecutor(_jobs.ok, workers=1, num_cpus=-1)
    assert err.value.settings == ("cpus_per_eval", "gpus_per_eval")
    assert str(err.value) == "cpus_per_eval and gpus_per_eval must be >= 0, got -1 and 0"


# ---------------------------------------------------------------------------------------------------
# An executor that starts its own Ray instance (first: the shared instance below is not up yet).


@needs_ray
def test_an_executor_starts_a_local_instance_runs_every_job_and_stops_it():
    import ray

    if ray.is_initialized():
        pytest.skip("this process is already connected to Ray")
    with RayExecutor(_jobs.dispatch, workers=2, timeout=60, initializer=_jobs.initialise,
                     initargs=("mnist",)) as ex:
        assert isinstance(ex, Executor) and ex.capacity == 2 and ray.is_initialized()
        for i in range(6):
            ex.submit(i, {"do": "ok", "reward": i / 10, "seed": i})
        ex.submit(6, {"do": "boom", "n": 7})
        ex.submit(7, {"do": "not_a_result"})
        ex.submit(8, {"do": "report_init"})
        with pytest.raises(ValueError, match="already in flight"):
            ex.submit(0, {"do": "ok", "reward": 0.0})
        done = drain(ex, 9)
        assert ex.wait_ready(timeout=60) and all(pid is not None for pid in ex.worker_pids())
    assert not ray.is_initialized()  # it started Ray, so it stopped it
    assert [(done[i].result.status, done[i].result.reward, done[i].result.seed) for i in range(6)] == \
        [("ok", i / 10, i) for i in range(6)]
    assert done[6].result.status == "error" and done[6].result.reason == "ValueError: boom 7"
    assert "Traceback" in done[6].detail
    assert done[7].result.reason == "work function returned int, expected EvalResult"
    pid, inits, torch_threads, omp = done[8].result.reason.split("|")
    assert inits == "mnist"  # the initializer ran once in that actor, not once per job
    assert (torch_threads, omp) == ("1", "1")
    assert all(c.worker_seconds >= 0 for c in done.values())


# ---------------------------------------------------------------------------------------------------
# One Ray instance for everything below.


@pytest.fixture(scope="module")
def shared_ray(tmp_path_factory):
    """A local Ray instance; yields the marker path `evaluate_or_die_once` uses.

    4 logical CPUs: the fault tests' pool (2 actors of 1 CPU) lives until the module ends, and a
    search's 2 actors need CPUs of their own or they would wait for the pool's forever.
    """
    ray = pytest.importorskip("ray")
    marker = tmp_path_factory.mktemp("ray") / "died"
    os.environ[_ray_jobs.DIE_MARKER_ENV] = str(marker)  # Ray's processes inherit it when they start
    try:
        if ray.is_initialized():
            ray.shutdown()
        connect_ray(num_cpus=4)
    finally:
        del os.environ[_ray_jobs.DIE_MARKER_ENV]
    yield marker
    ray.shutdown()


@pytest.fixture(scope="module")
def pool(shared_ray):
    """Two actors shared by the fault tests; each fault replaces an actor, so the pool stays whole."""
    with RayExecutor(_ray_jobs.dispatch, workers=2, timeout=3, max_retries=1) as ex:
        assert ex.wait_ready(timeout=60)
        yield ex


@needs_ray
def test_a_job_past_its_timeout_is_an_error_and_later_jobs_still_run(pool):
    pool.submit(0, {"do": "hang"})
    for i in range(1, 4):
        pool.submit(i, {"do": "ok", "reward": 0.5})
    done = drain(pool, 4)
    assert done[0].result.status == "error" and done[0].result.reason == "timed out after 3s"
    assert done[0].worker_seconds >= 3
    assert all(done[i].result.status == "ok" for i in range(1, 4))
    for i in range(10, 14):  # the killed actor was replaced: full capacity again
        pool.submit(i, {"do": "ok", "reward": 0.25})
    assert all(c.result.status == "ok" for c in drain(pool, 4).values())
    assert pool.wait_ready(timeout=60) and all(pid is not None for pid in pool.worker_pids())


@needs_ray
def test_a_worker_killed_mid_job_is_replaced_and_the_job_runs_again(pool, tmp_path):
    pid_file = tmp_path / "pid"
    pool.submit(0, {"do": "sleep_once", "pid_file": str(pid_file)})
    pool.submit(1, {"do": "ok", "reward": 0.5})
    early: list[Completion] = []  # job 1 may finish while job 0 sleeps
    deadline = time.monotonic() + 30
    while not pid_file.exists():
        assert time.monotonic() < deadline, "the job never started"
        early += pool.poll(timeout=0.1)
    killed = int(pid_file.read_text())
    os.kill(killed, signal.SIGKILL)
    done = {c.job_id: c for c in early} | drain(pool, 2 - len(early))
    assert done[0].result.status == "ok" and int(done[0].result.reason) != killed
    assert done[1].result.status == "ok"
    assert killed not in pool.worker_pids()


@needs_ray
def test_a_job_that_always_kills_its_worker_is_an_error_after_its_retries(pool, tmp_path):
    pool.submit(0, {"do": "exit_hard"})
    pool.submit(1, {"do": "die_once", "marker": str(tmp_path / "died"), "reward": 0.75})
    pool.submit(2, {"do": "ok", "reward": 0.5})
    done = drain(pool, 3)
    assert done[0].result.status == "error"
    assert done[0].result.reason.startswith("worker lost after 2 attempts: ")  # max_retries=1
    assert (done[1].result.status, done[1].result.reward) == ("ok", 0.75)  # retried once, then fine
    assert done[2].result.status == "ok"


@needs_ray
def test_a_failing_initializer_stops_the_executor(shared_ray):
    with RayExecutor(_jobs.ok, workers=1, initializer=_jobs.fail_init, initargs=("cifar",)) as ex:
        with pytest.raises(ExecutorError, match="cannot build task cifar"):
            ex.wait_ready(timeout=60)


@needs_ray
def test_resources_no_node_has_are_reported(shared_ray):
    with pytest.warns(RuntimeWarning, match="no Ray node has the 1 CPU and 1 GPU one evaluation needs"):
        RayExecutor(_jobs.ok, workers=1, num_gpus=1).close()


# ---------------------------------------------------------------------------------------------------
# Searches.


def search_config(**overrides) -> SearchConfig:
    base = dict(strategy="random", budget=4, workers=2, seed=3, backend="ray", round_size=6, eval=FAST_EVAL)
    base.update(overrides)
    return SearchConfig(**base)


def run_search(run_dir: Path, cfg: SearchConfig):
    search = Search(cfg, run_dir)
    try:
        progress = search.run()
        samples = [(s.idx, s.tokens, s.rule_key, s.reward) for s in search.store.samples()]
        rules = [(r.key, r.result.status, r.result.reward) for r in search.store.rules()]
    finally:
        search.close()
    return progress, samples, rules


def assert_every_rule_recorded_once(samples, rules) -> None:
    keys = [key for key, _, _ in rules]
    assert len(keys) == len(set(keys))
    assert [s[0] for s in samples] == list(range(len(samples)))  # gap-free sample indices
    assert {s[2] for s in samples} <= set(keys)


@pytest.fixture(scope="module")
def local_search(tmp_path_factory):
    """The reference: the same search evaluated in this process."""
    return run_search(tmp_path_factory.mktemp("local") / "run", search_config(backend="local", workers=0))


@needs_ray
def test_a_search_on_ray_finds_what_the_local_backend_finds(shared_ray, local_search, tmp_path):
    progress, samples, rules = run_search(tmp_path / "run", search_config())
    assert progress.evaluations == 4
    assert_every_rule_recorded_once(samples, rules)
    assert (samples, sorted(rules)) == (local_search[1], sorted(local_search[2]))


@needs_ray
def test_a_search_survives_a_worker_lost_mid_evaluation(shared_ray, local_search, tmp_path, monkeypatch):
    import nos_symbolic.evaluate

    monkeypatch.setattr(nos_symbolic.evaluate, "evaluate_job", _ray_jobs.evaluate_or_die_once)
    progress, samples, rules = run_search(tmp_path / "run", search_config())
    assert shared_ray.exists()  # an evaluation did lose its worker
    assert progress.evaluations == 4
    assert_every_rule_recorded_once(samples, rules)
    assert (samples, sorted(rules)) == (local_search[1], sorted(local_search[2]))  # the retry's result
