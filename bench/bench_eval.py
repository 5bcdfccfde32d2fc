"""Rule evaluations on mnist1d: seconds per default evaluation, forward+backward share, and evaluations
per minute with 1 and 2 worker processes, for a fixed list of 20 rules.

    python bench/bench_eval.py [--repeats 1]

Targets: one default evaluation (lr grid + final 5-epoch run) in at most 2 s on one core; forward and
backward at least 70% of its wall time; 2 workers close to 2x the evaluations per minute of 1.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from bench_train import Stopwatch  # bench/ is the script's own directory
from controller.executors import ProcessExecutor
from nos_symbolic.evaluate import EvalConfig, evaluate_job, rule_factory, task_for, warm_worker
from nos_symbolic.rule import parse_rule
from nos_symbolic.tasks.train import evaluate_factory

RULES = (
    "powersign", "addsign", "powersign-cd", "addsign-cd", "powersign-ld", "addsign-rd", "adam", "rmsprop",
    "g", "sign(m)", "sign(g)", "m", "g + 1e-4*w", "clip(g, 1e-3)", "drop(g, 0.3)", "g*exp(noise)",
    "sqrt(abs(g))*sign(g)", "adam + 1e-3*w", "sign(m)*sqrt(abs(g))", "rmsprop*exp(sign(g)*sign(m))",
)


def one_core(config: EvalConfig, rules: tuple[str, ...]) -> tuple[list[float], list[float]]:
    """Wall seconds and forward+backward share of each rule's default evaluation, in this process."""
    torch.set_num_threads(1)
    task = task_for(config)
    walls, shares = [], []
    for text in rules:
        watch = Stopwatch()
        timed = dataclasses.replace(task, make_model=watch.wrap_model(task.make_model))
        restore = watch.patch_backward()
        try:
            start = time.perf_counter()
            evaluate_factory(timed, rule_factory(parse_rule(text), config.seed), lrs=config.lrs,
                             epochs=config.epochs, grid_epochs=config.grid_epochs, seed=config.seed)
            wall = time.perf_counter() - start
        finally:
            restore()
        walls.append(wall)
        shares.append((watch.forward + watch.backward) / wall)
    return walls, shares


def throughput(config: EvalConfig, rules: tuple[str, ...], workers: int) -> tuple[float, float]:
    """(evaluations per minute, share of worker time spent evaluating) over the rule list."""
    with ProcessExecutor(evaluate_job, workers, initializer=warm_worker, initargs=(config.to_dict(),)) as ex:
        ex.wait_ready()
        start = time.perf_counter()
        for i, text in enumerate(rules):
            ex.submit(i, {"rule": text, "config": config.to_dict()})
        busy = 0.0
        while ex.in_flight():
            busy += sum(c.worker_seconds for c in ex.poll(1.0))
        wall = time.perf_counter() - start
    return 60 * len(rules) / wall, busy / (wall * workers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1, help="passes over the rule list")
    args = ap.parse_args()
    config = EvalConfig()
    rules = RULES * args.repeats
    task_for(config)
    one_core(config, ("g",))  # warm-up: first-call costs

    walls, shares = one_core(config, rules)
    print(f"{len(rules)} rules, default evaluation ({len(config.lrs)}-point lr grid x {config.grid_epochs:g} epoch "
          f"+ {config.epochs} epochs), one thread:")
    print(f"  seconds per evaluation: median {statistics.median(walls):.2f}, max {max(walls):.2f}  (target <= 2)")
    print(f"  forward+backward share: median {100 * statistics.median(shares):.0f}%  (target >= 70%)")
    one, busy1 = throughput(config, rules, 1)
    two, busy2 = throughput(config, rules, 2)
    print(f"  1 worker : {one:6.1f} evaluations/min (workers busy {100 * busy1:.0f}%)")
    print(f"  2 workers: {two:6.1f} evaluations/min (workers busy {100 * busy2:.0f}%), {two / one:.2f}x 1 worker")


if __name__ == "__main__":
    main()
