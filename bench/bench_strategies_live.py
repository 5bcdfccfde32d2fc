"""Strategies against random search with real training: the default search, 10+ seeds per strategy.

    python bench/bench_strategies_live.py [--seeds 10] [--budget 240] [--strategies ppo evolution random]
                                          [--workers 2] [--target 0.965] [--out bench/out/live]
    python bench/bench_strategies_live.py --plot      # the anytime curves of the runs under --out

Each (strategy, seed) is a default `nos search` (halving reward at 3 epochs, the best quarter promoted
to 10 and then 30 epochs, the lr re-searched at each length, their `*cd` variants beside) with that
strategy seed. The quality of a run at any point is the long-horizon score: the best validation
accuracy of a rule the search has trained for 30 epochs so far (its own promotion training: one
seed, the lr tuned at that length), with that rule's test accuracy beside. After every training the
script records (trainings so far, best 30-epoch validation accuracy so far): the anytime curve.

Printed per strategy: the mean final best at 30 epochs (validation and its rule's test accuracy)
with 95% t-intervals, the mean best after 60/120/180/240 trainings, the training at which the best
first reaches --target (median over seeds; budget + 1 when never), and Welch's t-test and the
Mann-Whitney U test of the final best (and of its rule's test accuracy) against random's (two-sided). A finished run is read back,
not run again (its curve is kept in curve.json); an unfinished one is run again from the start.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import time
from pathlib import Path

from scipy import stats

from controller.search import Search, SearchConfig
from controller.store import RunStore

CURVE_FILE = "curve.json"


def best_long(store: RunStore) -> tuple[float, float | None, float] | None:
    """(validation, test accuracy, epochs) of the best rule at the longest length any rule reached."""
    lengths = store.lengths()
    longest = max((e for per in lengths.values() for e in per), default=None)
    if longest is None:
        return None
    results = [per[longest] for per in lengths.values() if longest in per and per[longest].val_acc is not None]
    if not results:
        return None
    best = max(results, key=lambda r: r.val_acc)
    return best.val_acc, best.test_acc, longest


def run_one(strategy: str, seed: int, budget: int, workers: int, out: Path) -> dict:
    """One search (or its record, when it finished before): its anytime curve and final figures."""
    run_dir = out / f"{strategy}-{seed}"
    done = run_dir / CURVE_FILE
    if done.exists():
        return json.loads(done.read_text())
    if run_dir.exists():  # an interrupted run: its curve was not kept, so it runs again
        shutil.rmtree(run_dir)
    curve: list[tuple[int, float | None]] = []
    search = Search(SearchConfig(strategy=strategy, budget=budget, seed=seed, workers=workers), run_dir)
    start = time.monotonic()

    def record(p) -> None:
        best = best_long(search.store)
        curve.append((p.evaluations, None if best is None else best[0]))

    try:
        progress = search.run(record)
    finally:
        search.close()
    with RunStore.open_readonly(run_dir) as store:
        final = best_long(store)
    curve.append((progress.evaluations, None if final is None else final[0]))  # trainings after the last report
    record_ = {"strategy": strategy, "seed": seed, "budget": budget, "curve": curve,
               "trainings": progress.evaluations, "samples": progress.samples, "rejected": progress.rejected,
               "best_val": None if final is None else final[0], "best_test": None if final is None else final[1],
               "epochs": None if final is None else final[2], "minutes": (time.monotonic() - start) / 60}
    done.write_text(json.dumps(record_))
    return record_


def best_after(record: dict, n: int) -> float:
    """The best 30-epoch validation accuracy once `n` trainings were done (0 before any)."""
    values = [v for count, v in record["curve"] if count <= n and v is not None]
    return max(values, default=0.0)


def first_reaching(record: dict, target: float) -> int:
    """The training count at which the best first reached target; budget + 1 when never."""
    return next((count for count, v in record["curve"] if v is not None and v >= target), record["budget"] + 1)


def band(values: list[float]) -> str:
    """mean ± half-width of the 95% t-interval, in percent."""
    mean = statistics.fmean(values)
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)) \
        if len(values) > 1 else float("nan")
    return f"{100 * mean:.2f} ± {100 * half:.2f}"


def against(values: list[float], random: list[float], name: str) -> str:
    """Welch's t-test and the Mann-Whitney U test of `values` against random's (two-sided)."""
    if name == "random" or len(values) < 2 or len(random) < 2:
        return "-"
    welch = stats.ttest_ind(values, random, equal_var=False).pvalue
    return f"{welch:.2f} / {stats.mannwhitneyu(values, random, alternative='two-sided').pvalue:.2f}"


def report(records: dict[str, list[dict]], budget: int, target: float) -> str:
    """The markdown table of the benchmark."""
    marks = [n for n in (60, 120, 180, 240) if n <= budget]
    head = (["strategy", "seeds", "best val @30 (%)", "its test (%)"] + [f"best after {n}" for n in marks]
            + [f"to {100 * target:.1f}% (median)", "reached", "val: Welch / MW p", "test: Welch / MW p",
               "rejected"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = records.get("random", [])
    for name, runs in records.items():
        finals = [r["best_val"] or 0.0 for r in runs]
        tests = [r["best_test"] or 0.0 for r in runs]
        reach = [first_reaching(r, target) for r in runs]
        rejected = sum(r["rejected"] for r in runs) / max(sum(r["samples"] for r in runs), 1)
        row = ([name, str(len(runs)), band(finals), band(tests)] + [band([best_after(r, n) for r in runs]) for n in marks]
               + [f"{statistics.median(reach):.0f}", f"{sum(x <= budget for x in reach)}/{len(runs)}",
                  against(finals, [r["best_val"] or 0.0 for r in base], name),
                  against(tests, [r["best_test"] or 0.0 for r in base], name), f"{100 * rejected:.1f}%"])
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot(records: dict[str, list[dict]], budget: int, path: Path) -> Path:
    """Anytime curves: mean best 30-epoch validation accuracy against trainings, with 95% bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    # From the first training after which every run has a 30-epoch score: before it the mean mixes
    # runs that have none (0) with runs that have one.
    start = max(next((c for c, v in r["curve"] if v is not None), budget) for runs in records.values() for r in runs)
    xs = list(range(start, budget + 1))
    for name, runs in records.items():
        curves = [[best_after(r, n) for n in xs] for r in runs]
        mean = [statistics.fmean(c[i] for c in curves) for i in range(len(xs))]
        half = [stats.t.ppf(0.975, len(curves) - 1) * statistics.stdev(c[i] for c in curves) / math.sqrt(len(curves))
                if len(curves) > 1 else 0.0 for i in range(len(xs))]
        ax.plot(xs, [100 * m for m in mean], label=f"{name} ({len(runs)} seeds)")
        ax.fill_between(xs, [100 * (m - h) for m, h in zip(mean, half)], [100 * (m + h) for m, h in zip(mean, half)],
                        alpha=0.2)
    ax.set_xlim(0, budget)
    ax.set_xlabel("trainings (any length); curves start once every run has a 30-epoch score")
    ax.set_ylabel("best validation accuracy at 30 epochs (%)")
    ax.set_title("Default search on mnist1d: best rule at full length so far")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=SearchConfig().budget)
    ap.add_argument("--strategies", nargs="+", default=["ppo", "evolution", "random"])
    ap.add_argument("--workers", type=int, default=SearchConfig().workers)
    ap.add_argument("--target", type=float, default=0.965, help="the 30-epoch validation accuracy whose first reach is timed")
    ap.add_argument("--out", type=Path, default=Path("bench/out/live"))
    ap.add_argument("--plot", action="store_true", help="only read the finished runs and plot them")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    records: dict[str, list[dict]] = {name: [] for name in args.strategies}
    for seed in range(args.seeds):  # seed by seed: an interrupted benchmark holds whole seeds
        for name in args.strategies:
            if args.plot and not (args.out / f"{name}-{seed}" / CURVE_FILE).exists():
                continue
            record = run_one(name, seed, args.budget, args.workers, args.out)
            records[name].append(record)
            print(f"{name} seed {seed}: best val@{record['epochs']} {record['best_val']}, test {record['best_test']}, "
                  f"{record['minutes']:.1f} min", flush=True)
    records = {k: v for k, v in records.items() if v}
    print(report(records, args.budget, args.target))
    print(f"plot: {plot(records, args.budget, args.out / 'anytime.png')}")


if __name__ == "__main__":
    main()
