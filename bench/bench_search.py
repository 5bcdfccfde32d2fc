"""Search quality: PPO and evolution against random search, judged on confirmed results.

    python bench/bench_search.py [--budget 200] [--seeds 5] [--strategies ppo evolution random]
                                 [--top 5] [--confirm-seeds 5] [--beats paired|mean] [--workers N]
                                 [--task T] [--protocol full|halving] [--epochs E] [--lrs LR ...]
                                 [--out bench/out/search]

Every strategy searches the default task (or --task) with the same budget and strategy seeds 0..S-1; each run's
top K distinct rules are then confirmed (`nos confirm`: fresh seeds, test split, every baseline).
Per run it measures
  best      the best confirmed mean test accuracy among the run's confirmed rules;
  to-Adam   the evaluations until the search first trained a rule that beats tuned Adam on
            confirmation: that rule's 1-based index among the run's trained rules in evaluation
            order; budget + 1 when no confirmed rule beats Adam. "Beats" is the paired t-test over
            the confirmation seeds, better at p < 0.05 (--beats paired), or a mean test accuracy
            above Adam's (--beats mean);
  last-50   the mean reward (validation accuracy) of the run's last 50 trained rules;
  wall      minutes of the search and of its confirmation.
Per strategy: mean and 95% t-interval over seeds. Then each strategy against random on best and
to-Adam over seeds: Welch's t-test and the Mann-Whitney U test (two-sided); the verdict is Welch's
at p < 0.05, Mann-Whitney's p stands beside it as the check that assumes no normality.
Run directories stay under --out: a rerun resumes an unfinished search, skips a finished one, and
confirmation trains only what its store lacks. The baselines' confirmation trainings depend only on
the task, the protocol and the seeds, never on the run, so each run's store is given the ones an
earlier run under --out already holds (same recorded protocol), and every baseline is trained once
for the whole benchmark. Writes bench_search.json there.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from controller.search import CONFIG_FILE, Search, SearchConfig
from controller.store import RunStore
from controller.studies.confirm import STUDY, confirm
from controller.studies.contenders import baseline_key, baselines
from controller.studies.runner import Workers
from controller.studies.summary import Summary, score
from nos_symbolic.evaluate import EvalConfig
from nos_symbolic.stats import ALPHA, MeanCI, mean_ci, paired_test, verdict
from nos_symbolic.tasks.protocol import PROTOCOL_NAMES

LAST = 50  # trained rules whose mean reward says where the strategy ended up
TIMES_FILE = "times.json"  # wall seconds per run, summed over the invocations that ran it


@dataclass(frozen=True)
class RunResult:
    strategy: str
    seed: int
    best: float | None
    to_adam: int  # budget + 1: no confirmed rule beats Adam
    beater: str | None
    last_reward: float
    search_min: float
    confirm_min: float


def search_run(config: SearchConfig, run_dir: Path) -> list[float]:
    """Run, resume or skip the search in run_dir; the rewards of its trained rules in evaluation order."""
    if (run_dir / CONFIG_FILE).exists():
        with RunStore.open_readonly(run_dir) as store:
            done = store.n_evaluations() >= config.budget
        if not done:
            _run(Search(config, run_dir, resume=True))
    else:
        _run(Search(config, run_dir))
    return [r.result.reward for r in trained_rules(run_dir)]


def _run(search: Search) -> None:
    try:
        search.run()
    finally:
        search.close()


def trained_rules(run_dir: Path) -> list:
    """The run's rules that were trained (all but pre-screen rejections), first evaluated first."""
    with RunStore.open_readonly(run_dir) as store:
        return [r for r in store.rules() if r.result.status != "rejected"]


def beats_adam(summary: Summary, adam: Summary, scores: dict[str, dict[int, float]], how: str) -> bool:
    """Whether a confirmed rule beats tuned Adam: paired t-test better at p < ALPHA, or mean above."""
    if summary.test is None or adam.test is None:
        return False
    if how == "mean":
        return summary.test.mean > adam.test.mean
    mine, theirs = scores[summary.key], scores[adam.key]
    common = sorted(set(mine) & set(theirs))
    return bool(common) and verdict(paired_test([mine[s] for s in common], [theirs[s] for s in common])) == "better"


def confirmed_scores(run_dir: Path, seeds: list[int]) -> dict[str, dict[int, float]]:
    """key -> seed -> the test accuracy the confirmation counts (summary.score), these seeds only."""
    out: dict[str, dict[int, float]] = {}
    with RunStore.open_readonly(run_dir) as store:
        for row in store.trainings(STUDY):
            if row.seed in seeds and (s := score(row)) is not None:
                out.setdefault(row.key, {})[row.seed] = s
    return out


def share_baselines(run_dir: Path, out: Path) -> int:
    """Copy into run_dir's store the baseline confirmation trainings of another run under out that
    recorded the same confirmation protocol; how many were copied (a training already there stays)."""
    from controller.lock import run_lock
    from controller.studies.confirm import run_eval_config
    from controller.studies.runner import protocol_meta_key, protocol_record, study_task

    task = study_task(run_eval_config(run_dir, Workers()))
    key, protocol = protocol_meta_key(STUDY, task.name), protocol_record(task)
    wanted = {c.key for c in baselines()}
    rows = []
    for other in sorted(p for p in out.iterdir() if p != run_dir and (p / "store.sqlite").is_file()):
        with RunStore.open_readonly(other) as store:
            if store.get_meta(key) == protocol:
                rows = [r for r in store.trainings(STUDY) if r.key in wanted]
        if rows:
            break
    if not rows:
        return 0
    with run_lock(run_dir, "bench_search"), RunStore.open(run_dir) as store:
        if store.get_meta(key) not in (None, protocol):
            return 0  # confirm will say why the protocols differ
        store.set_meta(key, protocol)
        return sum(store.record_training(r) for r in rows)


def measure(strategy: str, seed: int, config: SearchConfig, run_dir: Path, args, times: dict) -> RunResult:
    """Search (or resume), confirm the top rules, and reduce the run to its four numbers."""
    start = time.perf_counter()
    rewards = search_run(config, run_dir)
    mid = time.perf_counter()
    share_baselines(run_dir, run_dir.parent)
    report = confirm(run_dir, top=args.top, seeds=args.confirm_seeds, workers=Workers(workers=args.workers))
    spent = times.setdefault(run_dir.name, {"search": 0.0, "confirm": 0.0})
    spent["search"] += mid - start
    spent["confirm"] += time.perf_counter() - mid
    ((_, summaries),) = report.summaries.items()
    found = [s for s in summaries if s.source == "search" and s.test is not None]
    adam = next(s for s in summaries if s.key == baseline_key("adam"))
    scores = confirmed_scores(run_dir, report.seeds)
    order = {r.key: i + 1 for i, r in enumerate(trained_rules(run_dir))}
    beaters = sorted((order[s.key], s.rule) for s in found if beats_adam(s, adam, scores, args.beats))
    to_adam, beater = beaters[0] if beaters else (config.budget + 1, None)
    return RunResult(strategy, seed, max((s.test.mean for s in found), default=None), to_adam, beater,
                     statistics.fmean(rewards[-LAST:]), spent["search"] / 60, spent["confirm"] / 60)


def ci_text(values: list[float], digits: int) -> str:
    """mean [low, high] of the values (the mean alone when there is no interval)."""
    if not values:
        return "-"
    m: MeanCI = mean_ci(values)
    if m.low is None:
        return f"{m.mean:.{digits}f}"
    return f"{m.mean:.{digits}f} [{m.low:.{digits}f}, {m.high:.{digits}f}]"


def strategy_table(results: list[RunResult], strategies: list[str], budget: int) -> str:
    rows = ["| strategy | runs | best confirmed test acc | evaluations to beat Adam | runs that beat Adam "
            f"| mean reward, last {LAST} | search min | confirm min |",
            "|---|---|---|---|---|---|---|---|"]
    for name in strategies:
        mine = [r for r in results if r.strategy == name]
        rows.append(f"| {name} | {len(mine)} | {ci_text([r.best for r in mine if r.best is not None], 4)} "
                    f"| {ci_text([float(r.to_adam) for r in mine], 1)} "
                    f"| {sum(r.to_adam <= budget for r in mine)}/{len(mine)} "
                    f"| {ci_text([r.last_reward for r in mine], 4)} | {ci_text([r.search_min for r in mine], 1)} "
                    f"| {ci_text([r.confirm_min for r in mine], 1)} |")
    return "\n".join(rows)


def compare(a: list[float], b: list[float], higher_is_better: bool) -> tuple[float | None, float | None, str]:
    """Welch's t-test and Mann-Whitney U p-values of a against b (two-sided), and Welch's verdict."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None, None, "too few seeds"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # equal constant samples: scipy warns, answers nan
        p_welch = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        p_mwu = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    p_welch = p_welch if math.isfinite(p_welch) else None
    delta = statistics.fmean(a) - statistics.fmean(b)
    if p_welch is None or p_welch >= ALPHA or delta == 0:
        return p_welch, p_mwu, "same"
    return p_welch, p_mwu, "better" if (delta > 0) == higher_is_better else "worse"


def comparison_table(results: list[RunResult], strategies: list[str]) -> str:
    rows = ["| strategy vs random | metric | difference of means | Welch p | Mann-Whitney p | verdict (p < 0.05) |",
            "|---|---|---|---|---|---|"]
    base = [r for r in results if r.strategy == "random"]
    for name in (s for s in strategies if s != "random"):
        mine = [r for r in results if r.strategy == name]
        for metric, get, higher in (("best confirmed test acc", lambda r: r.best, True),
                                    ("evaluations to beat Adam", lambda r: float(r.to_adam), False)):
            a = [get(r) for r in mine if get(r) is not None]
            b = [get(r) for r in base if get(r) is not None]
            if not a or not b:
                continue
            p_w, p_u, said = compare(a, b, higher)
            rows.append(f"| {name} | {metric} | {statistics.fmean(a) - statistics.fmean(b):+.4g} "
                        f"| {_p(p_w)} | {_p(p_u)} | {said} |")
    return "\n".join(rows)


def _p(p: float | None) -> str:
    return "null" if p is None else f"{p:.3g}"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=5, help="strategy seeds 0..S-1 per strategy")
    ap.add_argument("--strategies", nargs="+", default=["ppo", "evolution", "random"])
    ap.add_argument("--top", type=int, default=5, help="rules per run to confirm")
    ap.add_argument("--confirm-seeds", type=int, default=5)
    ap.add_argument("--beats", choices=("paired", "mean"), default="paired",
                    help="how a confirmed rule beats Adam: paired t-test at p < 0.05, or a higher mean")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--task", default=EvalConfig().task, help="the child task (a harder one: mnist1d-shuffled)")
    ap.add_argument("--protocol", choices=PROTOCOL_NAMES, default=EvalConfig().protocol)
    ap.add_argument("--epochs", type=int, default=None, help="final run length (default: the protocol's)")
    ap.add_argument("--lrs", type=float, nargs="+", default=list(EvalConfig().lrs), help="the lr grid")
    ap.add_argument("--out", type=Path, default=Path("bench/out/search"))
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if "random" not in args.strategies:
        args.strategies.append("random")  # the reference every other strategy is tested against
    args.out.mkdir(parents=True, exist_ok=True)
    eval_config = EvalConfig(task=args.task, protocol=args.protocol, epochs=args.epochs, lrs=tuple(args.lrs))
    times_path = args.out / TIMES_FILE
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    print(f"{len(args.strategies)} strategies x {args.seeds} seeds x budget {args.budget} on {eval_config.task} "
          f"({args.protocol} protocol); top {args.top} of each run confirmed with {args.confirm_seeds} seeds; "
          f"beats Adam: {args.beats}")
    results = []
    for seed in range(args.seeds):  # seed-major, so an interrupted benchmark holds comparable strategies
        for name in args.strategies:
            config = SearchConfig(strategy=name, budget=args.budget, workers=args.workers, seed=seed,
                                  eval=eval_config)
            r = measure(name, seed, config, args.out / f"{name}-{seed}", args, times)
            times_path.write_text(json.dumps(times, indent=2))
            results.append(r)
            print(f"{name:<10} seed {seed}: best confirmed {r.best if r.best is None else round(r.best, 4)}, "
                  f"beats Adam at {r.to_adam if r.beater else 'never'}"
                  f"{f' ({r.beater})' if r.beater else ''}, last-{LAST} reward {r.last_reward:.4f}, "
                  f"search {r.search_min:.1f} min, confirm {r.confirm_min:.1f} min", flush=True)
    (args.out / "bench_search.json").write_text(json.dumps([r.__dict__ for r in results], indent=2))
    print(f"\n{strategy_table(results, args.strategies, args.budget)}\n")
    print(f"evaluations to beat Adam: budget + 1 = {args.budget + 1} where none of a run's top {args.top} "
          f"does\n\n{comparison_table(results, args.strategies)}")


if __name__ == "__main__":
    main()
