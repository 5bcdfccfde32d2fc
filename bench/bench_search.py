"""PPO against random search and regularized evolution on mnist1d, same budget, same seeds.

    python bench/bench_search.py [--budget 300] [--seeds 3] [--workers 2] [--out bench/out]

Prints, per strategy and seed: the best validation accuracy found, the evaluations it took to beat
torch's Adam (tuned through the same lr grid), the cache-hit rate, the share of wall time the workers
spent evaluating, and evaluations per minute; then the speed-up of 2 workers over 1 on the same
search. Writes best_reward.png (best reward against evaluations, mean over seeds).
Targets: PPO and evolution beat tuned Adam within 300 evaluations; workers busy >= 90% of wall time;
2 workers >= 1.7x the evaluations per minute of 1.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from controller.search import Search, SearchConfig
from nos_symbolic.evaluate import EvalConfig, evaluate


def run_one(config: SearchConfig, run_dir: Path) -> dict:
    search = Search(config, run_dir)
    try:
        start = time.perf_counter()
        progress = search.run()
        wall = time.perf_counter() - start
        trained = sorted((r for r in search.store.rules() if r.result.status != "rejected"),
                         key=lambda r: r.created_at)
    finally:
        search.close()
    best, curve = 0.0, []
    for r in trained:
        best = max(best, r.result.reward)
        curve.append(best)
    return {"curve": curve, "wall": wall, "hits": progress.cache_hits / max(progress.samples, 1),
            "busy": progress.worker_seconds / (wall * max(config.workers, 1)),
            "per_min": 60 * progress.evaluations / wall}


def first_above(curve: list[float], level: float) -> int | None:
    return next((i + 1 for i, x in enumerate(curve) if x > level), None)


def plot(curves: dict[str, list[list[float]]], adam: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, runs in curves.items():
        n = min(len(c) for c in runs)
        mean = [statistics.fmean(c[i] for c in runs) for i in range(n)]
        ax.plot(range(1, n + 1), mean, label=f"{name} (mean of {len(runs)})")
    ax.axhline(adam, color="k", linestyle="--", label="Adam, tuned lr")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best validation accuracy")
    ax.set_ylim(max(0.0, adam - 0.15), 1.0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--strategies", nargs="+", default=["ppo", "random", "evolution"])
    ap.add_argument("--speedup-budget", type=int, default=40, help="evaluations of the 1-vs-2-worker run")
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    eval_config = EvalConfig()
    adam = evaluate("adam", eval_config)
    print(f"torch Adam, tuned lr {adam.lr:g}: validation accuracy {adam.val_acc:.4f}")
    print(f"{'strategy':<10} {'seed':>4} {'best':>7} {'beats Adam at':>13} {'cache hits':>10} {'busy':>5} {'eval/min':>8}")
    curves: dict[str, list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.strategies:
            for seed in range(args.seeds):
                config = SearchConfig(strategy=name, budget=args.budget, workers=args.workers, seed=seed,
                                      eval=eval_config)
                r = run_one(config, Path(tmp) / f"{name}-{seed}")
                curves.setdefault(name, []).append(r["curve"])
                beat = first_above(r["curve"], adam.val_acc)
                print(f"{name:<10} {seed:>4} {r['curve'][-1]:7.4f} {str(beat or '-'):>13} "
                      f"{100 * r['hits']:9.0f}% {100 * r['busy']:4.0f}% {r['per_min']:8.1f}", flush=True)
        plot(curves, adam.val_acc, args.out / "best_reward.png")
        walls = {}
        for workers in (1, 2):
            config = SearchConfig(strategy="random", budget=args.speedup_budget, workers=workers, seed=0,
                                  eval=eval_config)
            walls[workers] = run_one(config, Path(tmp) / f"speed-{workers}")["wall"]
    print(f"same search ({args.speedup_budget} evaluations): 1 worker {walls[1]:.1f} s, 2 workers {walls[2]:.1f} s: "
          f"{walls[1] / walls[2]:.2f}x evaluations per minute")
    print(f"plot: {args.out / 'best_reward.png'}")


if __name__ == "__main__":
    main()
