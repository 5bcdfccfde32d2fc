"""The paper's child network on CIFAR-10: torch's SGD, Momentum, Adam and RMSProp against PowerSign-cd
and AddSign-cd, each with its own best learning rate (the same protocol as `nos eval`).

    python bench/cifar10_baselines.py [--data PATH] [--subset 10000] [--epochs 5] [--workers 2]

PATH is a CIFAR-10 folder (cifar-10-batches-py/ or train/<class>/, test/<class>/ image folders) or the
JPEG archive ../shared/data/cifar10-jpeg.tar.gz, which is unpacked once into the cache directory.
Skipped (exit 0 with a note) when no data is found. CPU-sized by default: a class-balanced subset.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tarfile
import time
from pathlib import Path

from controller.executors import ProcessExecutor
from nos_symbolic.evaluate import EvalConfig, evaluate_job, warm_worker
from nos_symbolic.tasks.data import cache_dir

SPECS = ("sgd", "momentum", "adam", "rmsprop", "powersign-cd", "addsign-cd")
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def data_folder(path: Path) -> Path:
    """A folder with the images: `path` itself, or the archive unpacked into the cache."""
    if path.is_dir():
        return path
    target = cache_dir() / "cifar10-jpeg"
    if not (target / "train").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path) as tar:
            tar.extractall(target, filter="data")
    inner = [p for p in target.iterdir() if (p / "train").is_dir()]
    return inner[0] if inner and not (target / "train").is_dir() else target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--subset", type=int, default=10000, help="training images (0: all 50,000)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--grid-epochs", type=float, default=1.0)
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if not args.data.exists():
        print(f"skipped: no CIFAR-10 at {args.data}")
        return
    config = EvalConfig(task="cifar10", data_dir=str(data_folder(args.data)), subset=args.subset or None,
                        epochs=args.epochs, grid_epochs=args.grid_epochs, lrs=tuple(args.lrs),
                        protocol="full")  # the paper's protocol: the grid, then the final run
    jobs = [(spec, seed) for spec in SPECS for seed in range(args.seeds)]
    start = time.perf_counter()
    results: dict[str, list] = {spec: [] for spec in SPECS}
    with ProcessExecutor(evaluate_job, args.workers, initializer=warm_worker, initargs=(config.to_dict(),)) as ex:
        for i, (spec, seed) in enumerate(jobs):
            ex.submit(i, {"rule": spec, "config": {**config.to_dict(), "seed": seed}})
        while ex.in_flight():
            for done in ex.poll(5.0):
                results[jobs[done.job_id][0]].append(done.result)
                print(f"  {jobs[done.job_id][0]} seed {jobs[done.job_id][1]}: {done.result.status} "
                      f"val {done.result.val_acc} ({done.result.seconds:.0f} s)", file=sys.stderr, flush=True)
    print(f"CIFAR-10, paper's ConvNet, {args.subset or 'all'} training images, {args.epochs} epochs, "
          f"lr grid {args.lrs} x {args.grid_epochs:g} epoch, {args.seeds} seed(s), {time.perf_counter() - start:.0f} s")
    print(f"{'optimizer':<14} {'lr':>7} {'val acc %':>10} {'test acc %':>10}")
    for spec in sorted(SPECS, key=lambda s: -statistics.fmean(r.val_acc or 0 for r in results[s])):
        rs = results[spec]
        val = statistics.fmean(r.val_acc or 0 for r in rs)
        test = statistics.fmean(r.test_acc or 0 for r in rs)
        print(f"{spec:<14} {rs[0].lr or 0:7.0e} {100 * val:10.2f} {100 * test:10.2f}")


if __name__ == "__main__":
    main()
