"""Confirm a search run's best rules on fresh seeds, then transfer them to held-out tasks.

    python bench/bench_confirm.py RUN [--top 10] [--seeds 5] [--workers 2]
                                      [--tasks mnist1d-mlp,mnist1d-shuffled,charlm]
                                      [--transfer-top 3] [--transfer-seeds 5] [--out DIR]

Prints the wall time of each study, the confirmation table (test accuracy, paired difference to the
best baseline, p-values, verdicts, steps-to-target) and the rules x tasks transfer table, then the
two answers: does a search rule beat the best baseline on the search task's test split at p < 0.05,
and does it stay ahead on the held-out tasks. Both studies are stored in RUN and resume when run
again (a second call prints the tables without training). Tables and plots go to DIR (default
RUN/bench_confirm).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from analysis.studies import confirm_table, transfer_table
from controller.studies.confirm import confirm
from controller.studies.runner import Workers
from controller.studies.transfer import DEFAULT_TASKS, TransferSource, transfer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    parser.add_argument("--transfer-top", type=int, default=3)
    parser.add_argument("--transfer-seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or args.run / "bench_confirm"
    out.mkdir(parents=True, exist_ok=True)
    workers = Workers(workers=args.workers)

    start = time.perf_counter()
    confirmed = confirm(args.run, top=args.top, seeds=args.seeds, workers=workers)
    confirm_wall = time.perf_counter() - start
    ((task, summaries),) = confirmed.summaries.items()
    table = confirm_table(task, summaries, out)
    print(f"confirm: {args.top} rules + 8 baselines x {args.seeds} seeds on {task}: "
          f"{confirmed.progress.done} trainings in {confirm_wall:.0f} s "
          f"({confirmed.progress.stored} already stored), {args.workers} workers\n")
    print(f"{table.title}\n\n{table.markdown}")
    better = [s for s in summaries if s.source == "search" and s.verdict == "better"]
    print(f"a search rule beats the best baseline ({summaries[0].baseline}) on {task} test at p < 0.05: "
          + (", ".join(f"{s.rule} ({100 * s.paired.delta:+.2f} pp, p = {s.paired.p_ttest:.3g})" for s in better)
             if better else "no") + "\n")

    tasks = tuple(t for t in args.tasks.split(",") if t)
    start = time.perf_counter()
    moved = transfer(TransferSource(run_dir=args.run), tasks=tasks, seeds=args.transfer_seeds,
                     top=args.transfer_top, workers=workers)
    transfer_wall = time.perf_counter() - start
    table = transfer_table(moved.summaries, out)
    print(f"transfer: {args.transfer_top} rules + 8 baselines x {args.transfer_seeds} seeds on {', '.join(tasks)}: "
          f"{moved.progress.done} trainings in {transfer_wall:.0f} s ({moved.progress.stored} already stored)\n")
    print(f"{table.title}\n\n{table.markdown}")
    for t, per_task in moved.summaries.items():
        verdicts = ", ".join(f"{s.rule}: {s.verdict}" for s in per_task if s.source == "search")
        print(f"{t}: best baseline {per_task[0].baseline}; {verdicts}")
    print(f"\ntables and plots in {out}")


if __name__ == "__main__":
    main()
