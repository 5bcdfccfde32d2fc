"""Throughput of a search on the Ray backend against the local process backend, same machine.

Runs the same search (random strategy, fixed seed, default MNIST-1D evaluation) with `--backend local`
and `--backend ray` at the same number of workers, in pairs that alternate which backend goes first,
and prints evaluations per minute for each: over the whole run, and after start-up (from the moment
every worker is ready to the last evaluation; Ray's start-up includes starting a local Ray instance),
with the mean time of one evaluation inside its worker. Then the cost Ray adds to each evaluation,
measured directly: the round trip of a job that does nothing, one at a time, on both executors.

    python bench/bench_ray.py [--budget 40] [--workers 2] [--repeats 2] [--round-trips 200]
                                                     (with the project and Ray installed,
                                                      or PYTHONPATH=. from the root)

Target: Ray's throughput within 10% of the local backend's at 2 workers (ratio >= 0.90).

On a machine shared with other sessions, run it under `setsid`: Linux shares CPU fairly between
sessions (autogroup), Ray's workers live in the session of the Ray instance, and without `setsid`
the local backend's workers share one session's CPU with everything else started from the same
terminal, which makes Ray look faster than it is.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import controller.search as search_module
from controller.executors import ProcessExecutor
from controller.ray_executor import RayExecutor
from controller.search import Search, SearchConfig
from nos_symbolic.evaluate import EvalConfig
from nos_symbolic.result import EvalResult


@dataclass
class Run:
    backend: str
    evaluations: int
    wall: float  # Search.run from start to return, start-up and shut-down included
    ready: float  # seconds until every worker was ready
    last: float  # seconds until the last evaluation came back
    worker_seconds: float  # summed over evaluations, inside the work function

    @property
    def rate(self) -> float:
        return 60 * self.evaluations / self.wall

    @property
    def steady_rate(self) -> float:
        return 60 * self.evaluations / (self.last - self.ready)


def run_search(backend: str, budget: int, workers: int, seed: int) -> Run:
    """One search; the executor is wrapped to note when its workers are ready."""
    config = SearchConfig(strategy="random", budget=budget, workers=workers, seed=seed, backend=backend,
                          eval=EvalConfig())
    marks: dict[str, float] = {}
    make = search_module.make_search_executor

    def make_and_wait(cfg: SearchConfig):
        executor = make(cfg)
        executor.wait_ready(timeout=300)
        marks["ready"] = time.perf_counter()
        return executor

    def on_progress(progress) -> None:
        if progress.evaluations > marks.get("evaluations", 0):
            marks["evaluations"], marks["last"] = progress.evaluations, time.perf_counter()

    search_module.make_search_executor = make_and_wait
    try:
        with tempfile.TemporaryDirectory() as tmp:
            search = Search(config, Path(tmp) / "run")
            try:
                start = time.perf_counter()
                progress = search.run(on_progress)
                wall = time.perf_counter() - start
            finally:
                search.close()
    finally:
        search_module.make_search_executor = make
    return Run(backend, progress.evaluations, wall, marks["ready"] - start, marks["last"] - start,
               progress.worker_seconds)


def round_trip_ms(executor, n: int) -> float:
    """Median milliseconds from submit to poll's return for a job that does nothing, one at a time."""
    executor.wait_ready(timeout=300)
    times = []
    for i in range(n):
        start = time.perf_counter()
        executor.submit(i, "ok")
        while not executor.poll(timeout=1.0):
            pass
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2, help="pairs of runs (one local, one ray)")
    ap.add_argument("--round-trips", type=int, default=200)
    args = ap.parse_args()

    print(f"search: random, seed {args.seed}, budget {args.budget}, default mnist1d evaluation, "
          f"{args.workers} workers")
    print(f"{'backend':8} {'evals':>5} {'wall s':>7} {'ready s':>7} {'evals/min':>9} {'after start-up':>14} "
          f"{'s/eval in fn':>12}")
    runs: list[Run] = []
    for repeat in range(args.repeats):
        # Alternate which goes first, so a change in the machine's load does not favour one backend.
        for backend in ("local", "ray") if repeat % 2 == 0 else ("ray", "local"):
            r = run_search(backend, args.budget, args.workers, args.seed)
            runs.append(r)
            print(f"{r.backend:8} {r.evaluations:5d} {r.wall:7.1f} {r.ready:7.1f} {r.rate:9.1f} "
                  f"{r.steady_rate:14.1f} {r.worker_seconds / r.evaluations:12.2f}", flush=True)

    def median(backend: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs if r.backend == backend)

    for attr, label in (("rate", "whole run"), ("steady_rate", "after start-up")):
        local, ray = median("local", attr), median("ray", attr)
        print(f"ray/local throughput, {label:14}: {ray / local:.3f}  ({ray:.1f} vs {local:.1f} evals/min; "
              f"target >= 0.90)")
    evals = statistics.median(r.evaluations for r in runs)
    extra = (median("ray", "last") - median("ray", "ready")) - (median("local", "last") - median("local", "ready"))
    print(f"ray's extra time per evaluation after start-up: {1000 * extra / evals:.0f} ms "
          f"(median runs; noise from other load included)")

    # EvalResult("ok") is the cheapest work function there is: the payload is its status.
    with ProcessExecutor(EvalResult, args.workers) as ex:
        local = round_trip_ms(ex, args.round_trips)
    with RayExecutor(EvalResult, args.workers) as ex:
        ray = round_trip_ms(ex, args.round_trips)
    print(f"round trip of a no-op job (median of {args.round_trips}): local {local:.2f} ms, ray {ray:.2f} ms: "
          f"Ray adds {ray - local:.2f} ms per evaluation")


if __name__ == "__main__":
    main()
