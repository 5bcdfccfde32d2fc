"""Executors: every job comes back as a Completion, whatever the job does to its worker."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import _jobs
from controller.executors import (
    Completion,
    Executor,
    ExecutorError,
    SerialExecutor,
    callable_ref,
    make_executor,
)
from controller.process_executor import ProcessExecutor


@pytest.fixture(scope="module")
def pool():
    """Two healthy workers shared by the tests that do not hurt them (each spawn imports torch)."""
    with ProcessExecutor(_jobs.dispatch, workers=2, timeout=30,
                         initializer=_jobs.initialise, initargs=("mnist",)) as ex:
        assert ex.wait_ready(timeout=60)
        yield ex


def drain(ex: Executor, n: int, limit: float = 120.0) -> dict[int, Completion]:
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


def test_serial_runs_jobs_and_turns_failures_into_results():
    with SerialExecutor(_jobs.dispatch) as ex:
        ex.submit(0, {"do": "ok", "reward": 0.5})
        ex.submit(1, {"do": "boom", "n": 1})
        ex.submit(2, {"do": "not_a_result"})
        assert ex.in_flight() == 3
        done = drain(ex, 3)
    assert done[0].result.status == "ok" and done[0].result.reward == 0.5
    assert done[1].result.status == "error" and done[1].result.reason == "ValueError: boom 1"
    assert "Traceback" in done[1].detail
    assert done[2].result.reason == "work function returned int, expected EvalResult"


def test_work_function_must_be_importable_by_name():
    with pytest.raises(TypeError, match="module-level"):
        ProcessExecutor(lambda p: p, workers=1)
    assert callable_ref(_jobs.ok) == "_jobs:ok"
    with pytest.raises(ValueError, match="module:qualname"):
        callable_ref("no_colon")


def test_make_executor_picks_by_worker_count():
    ex = make_executor(_jobs.ok, workers=0)
    assert isinstance(ex, SerialExecutor) and isinstance(ex, Executor)


def test_the_process_pool_is_still_importable_from_executors():
    import controller.executors

    assert controller.executors.ProcessExecutor is ProcessExecutor
    with pytest.raises(AttributeError, match="no attribute 'NoSuchExecutor'"):
        controller.executors.NoSuchExecutor  # noqa: B018


def test_process_results_arrive_for_all_jobs(pool: ProcessExecutor):
    assert pool.capacity == 2 and isinstance(pool, Executor)
    for i in range(6):
        pool.submit(i, {"do": "ok", "reward": i / 10, "seed": i})
    pool.submit(6, {"do": "boom", "n": 7})
    pool.submit(7, {"do": "not_a_result"})
    with pytest.raises(TypeError, match="plain data"):
        pool.submit(8, {"do": "ok", "f": lambda: 0})
    with pytest.raises(ValueError, match="already in flight"):
        pool.submit(0, {"do": "ok", "reward": 0.0})
    done = drain(pool, 8)
    assert sorted(done) == list(range(8))
    for i in range(6):
        result = done[i].result
        assert result.status == "ok" and result.reward == i / 10 and result.seed == i
        assert done[i].worker_seconds >= 0.0
    assert done[6].result.status == "error"
    assert done[6].result.reason == "ValueError: boom 7"
    assert "boom 7" in done[6].detail
    assert done[7].result.reason == "work function returned int, expected EvalResult"


def test_timeout_kills_the_job_and_later_jobs_succeed():
    with ProcessExecutor(_jobs.dispatch, workers=1, timeout=1.0) as ex:
        assert ex.wait_ready(timeout=30)
        start = time.monotonic()
        ex.submit(0, {"do": "hang"})
        ex.submit(1, {"do": "ok", "reward": 0.3})
        done = drain(ex, 2)
        # the hang was cut short (60 s: the replacement worker imports torch, slow on a loaded machine)
        assert time.monotonic() - start < 60
    assert done[0].result.status == "error"
    assert done[0].result.reason == "timed out after 1s"
    assert done[0].worker_seconds >= 1.0
    assert done[1].result.status == "ok" and done[1].result.reward == 0.3


def test_worker_death_fails_only_its_job(tmp_path: Path):
    pid_file = tmp_path / "pid"
    with ProcessExecutor(_jobs.dispatch, workers=1, timeout=30) as ex:
        ex.submit(0, {"do": "exit_hard"})
        ex.submit(1, {"do": "ok", "reward": 0.4})
        done = drain(ex, 2)
        assert done[0].result.status == "error"
        assert done[0].result.reason == "worker process died (exit code 3)"
        assert done[1].result.status == "ok" and done[1].result.reward == 0.4

        ex.submit(2, {"do": "hang", "pid_file": str(pid_file)})
        end = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert ex.poll(timeout=0.05) == [] and time.monotonic() < end
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        ex.submit(3, {"do": "ok", "reward": 0.6})
        done = drain(ex, 2)
    assert done[2].result.reason == "worker process died (exit code -9, SIGKILL)"
    assert done[3].result.status == "ok" and done[3].result.reward == 0.6


def test_two_workers_run_two_jobs_at_once(pool: ProcessExecutor):
    start = time.monotonic()
    pool.submit(0, {"do": "sleep", "seconds": 1.5})
    pool.submit(1, {"do": "sleep", "seconds": 1.5})
    done = drain(pool, 2)
    wall = time.monotonic() - start
    assert wall < 2.6, f"2 x 1.5 s jobs took {wall:.1f}s on 2 workers"  # serial would be >= 3 s
    assert done[0].result.reason != done[1].result.reason  # two different worker pids
    assert all(c.worker_seconds >= 1.5 for c in done.values())


def test_initializer_runs_once_per_worker_and_workers_use_one_thread(pool: ProcessExecutor):
    for i in range(6):
        pool.submit(i, {"do": "report_init"})
    done = drain(pool, 6)
    pids = set()
    for c in done.values():
        assert c.result.status == "ok", c.result.reason
        pid, seen, torch_threads, omp = c.result.reason.split("|")
        assert seen == "mnist", f"worker {pid} ran the initializer {seen!r}"
        assert (torch_threads, omp) == ("1", "1")
        pids.add(int(pid))
    assert os.getpid() not in pids and pids <= set(pool.worker_pids())


def test_failing_initializer_raises():
    with ProcessExecutor(_jobs.ok, workers=1, initializer="_jobs:fail_init", initargs=("x",)) as ex:
        with pytest.raises(ExecutorError, match="cannot build task x"):
            ex.wait_ready(timeout=120)  # a worker's start imports torch: slow on a loaded machine


ORPHAN_PARENT = """
import sys, time
sys.path.insert(0, sys.argv[1])
import _jobs
from controller.process_executor import ProcessExecutor
ex = ProcessExecutor(_jobs.sleep, workers=1, timeout=60)
assert ex.wait_ready(timeout=60)
ex.submit(0, {"seconds": 1.0})
print("submitted", flush=True)
time.sleep(60)
"""


def test_workers_of_a_killed_parent_exit_quietly():
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    proc = subprocess.Popen([sys.executable, "-c", ORPHAN_PARENT, str(here)], cwd=here.parents[1],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"submitted\n"
    finally:
        proc.kill()  # kill -9: the worker is orphaned mid-job
        proc.wait()
    # The worker shares the parent's stderr; it is closed once the worker has exited.
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert err == b""


def test_a_bad_timeout_or_worker_count_is_refused():
    with pytest.raises(ValueError, match="timeout must be a finite number > 0"):
        ProcessExecutor(_jobs.ok, workers=1, timeout=float("nan"))
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        ProcessExecutor(_jobs.ok, workers=0)
