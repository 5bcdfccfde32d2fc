"""The Python entry point: evaluate rules, run or resume a search, confirm, transfer and read a
leaderboard from a notebook, writing the same run directories as the `nos` command (which calls it).

    from controller import api

    rows = api.evaluate(["adam", "sign(m)*g"], task="my_tasks:blobs", task_options={"n": 600})
    run = api.search(task="my_tasks:blobs", budget=32, workers=2, run_dir="runs/blobs")
    run = api.resume("runs/blobs", budget=48)                  # continue it to 48 evaluations
    for row in api.leaderboard("runs/blobs", k=5):
        print(row["reward"], row["val_acc"], row["metric"], row["rule"])
    report = api.confirm("runs/blobs", top=3, seeds=3, workers=2)

A task is a built-in name or "module:function" (a function returning a `nos_symbolic.Task`, imported
from sys.path or the current directory, with task_options as its keyword arguments). Every mistake a
user can fix raises NosError (a ValueError) before anything is written.
"""
from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from nos_symbolic.errors import NosError, SettingError
from nos_symbolic.evaluate import EvalConfig
from nos_symbolic.result import EvalResult


def eval_config(task: str = "mnist1d", task_options: dict[str, Any] | None = None, **settings: Any) -> EvalConfig:
    """An EvalConfig for task: settings are EvalConfig's fields (epochs, lrs, protocol, seed, ...)."""
    return EvalConfig(task=task, task_options=tuple(sorted((task_options or {}).items())), **settings)


def evaluate(rules: Iterable[str], task: str = "mnist1d", *, task_options: dict[str, Any] | None = None,
             seeds: int = 1, config: EvalConfig | None = None,
             on_result: Callable[[str, int, EvalResult], None] = lambda rule, seed, result: None,
             **settings: Any) -> list[dict[str, Any]]:
    """Score each rule (DSL text, a rule name, or a torch baseline: sgd, momentum, adam, rmsprop) on
    task with seeds 0..seeds-1: one row per rule with the status, the lr most often chosen, the
    metric on validation and test (mean and population std over seeds: val_acc, val_acc_std,
    test_acc, test_acc_std), the metric's name, seconds and the first reason. config, when given,
    replaces task, task_options and settings; on_result sees every finished evaluation."""
    from nos_symbolic.evaluate import BASELINE_NAMES, task_for
    from nos_symbolic.evaluate import evaluate as evaluate_one
    from nos_symbolic.rule import parse_rule

    rules = list(rules)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise SettingError(f"seeds ({{0}}) must be an integer >= 1, got {seeds!r}", "seeds")
    base = config or eval_config(task, task_options, **settings)
    keys = {spec: None if spec in BASELINE_NAMES else parse_rule(spec).key for spec in rules}  # fail fast
    base.check_device()
    task_for(base)  # builds the data once, before the first training (and fails fast on a bad data_dir)
    base.check_data()  # tries a task of the user's own on a batch of 2
    metric = base.metric_name()
    rows = []
    for spec in rules:
        results = []
        for seed in range(seeds):
            results.append(evaluate_one(spec, replace(base, seed=seed)))
            on_result(spec, seed, results[-1])
        rows.append({**summary_row(spec, keys[spec], results), "metric": metric})
    return rows


def summary_row(spec: str, key: str | None, results: list[EvalResult]) -> dict[str, Any]:
    """One rule's evaluations over seeds as a row (the first status that is not ok, else ok)."""
    statuses = [r.status for r in results]
    lrs = [r.lr for r in results if r.lr is not None]
    val, val_std = _mean_std([r.val_acc for r in results])
    test, test_std = _mean_std([r.test_acc for r in results])
    return {
        "rule": spec, "key": key, "status": next((s for s in statuses if s != "ok"), "ok"),
        "lr": Counter(lrs).most_common(1)[0][0] if lrs else None,
        "val_acc": val, "val_acc_std": val_std, "test_acc": test, "test_acc_std": test_std,
        "seconds": sum(r.seconds for r in results),
        "reason": next((r.reason for r in results if r.reason), ""),
    }


def search_config(task: str = "mnist1d", *, task_options: dict[str, Any] | None = None,
                  eval: EvalConfig | None = None, **settings: Any):
    """A SearchConfig: settings are SearchConfig's fields (strategy, budget, workers, seed, round_size,
    timeout, ...; unset: SearchConfig's defaults) and, for the evaluation, EvalConfig's (epochs, lrs,
    protocol, ...); eval, when given, replaces task, task_options and the evaluation's settings."""
    import dataclasses

    from controller.run_config import SearchConfig

    search_fields = {f.name for f in dataclasses.fields(SearchConfig)}
    mine = {k: v for k, v in settings.items() if k in search_fields and v is not None}
    evaluation = eval or eval_config(task, task_options, **{k: v for k, v in settings.items() if k not in search_fields})
    return SearchConfig(eval=evaluation, **mine)


def search(task: str = "mnist1d", *, run_dir: str | Path | None = None, on_progress: Callable | None = None,
           config=None, **settings: Any) -> Path:
    """Run a search (config, or search_config(task, **settings)) in a new run directory (run_dir, or
    runs/STRATEGY-DATE-TIME); returns the run directory. Ctrl-C keeps every finished evaluation."""
    config = config or search_config(task, **settings)
    return _run_search(config, Path(run_dir) if run_dir is not None else None, False, on_progress)


def resume(run_dir: str | Path, *, on_progress: Callable | None = None, **changes: Any) -> Path:
    """Continue the search in run_dir with the settings it recorded; changes may set budget, workers,
    timeout, backend, address, cpus_per_eval and gpus_per_eval (the settings a resume may change)."""
    from controller.run_config import resumed_config

    run_dir = Path(run_dir)
    config = resumed_config(run_dir, changes)
    return _run_search(config, run_dir, True, on_progress)


def _run_search(config, run_dir: Path | None, resuming: bool, on_progress: Callable | None) -> Path:
    from controller.search import Search

    run = Search(config, run_dir, resume=resuming)
    try:
        run.run(on_progress or (lambda p: None))
    finally:
        run.close()
    return run.run_dir


def leaderboard(run_dir: str | Path, k: int = 10) -> list[dict[str, Any]]:
    """The run's k best rules (read-only, so a search may be running): those trained at the longest
    length first, each by its reward there (RunStore.top). rule (DSL text), canonical, latex, key,
    reward, val_acc and test_acc (the task's metric) at that length, metric (its name), lr, status,
    epochs (the length) and search_reward (the reward at the search's own length)."""
    from controller.store import STORE_FILENAME, RunStore
    from nos_symbolic.dsl import dsl_text

    path = Path(run_dir)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise SettingError(f"{{0}} must be an integer >= 0, got {k}", "top")
    if not path.exists():
        raise NosError(f"run directory {path} not found")
    if path.is_dir() and not (path / STORE_FILENAME).is_file():
        raise NosError(f"{path} is not a run directory (no {STORE_FILENAME})")
    with RunStore.open_readonly(path) as store:
        top = store.top(k)
        search_epochs = ((store.get_meta("config") or {}).get("eval") or {}).get("epochs")
    metric = run_metric(path)
    return [{"rule": dsl_text(r.text), "canonical": r.canonical, "latex": r.latex, "key": r.key,
             "reward": r.result.reward, "val_acc": r.result.val_acc, "test_acc": r.result.test_acc,
             "metric": metric, "lr": r.result.lr, "status": r.result.status, "epochs": r.epochs or search_epochs,
             "search_reward": (r.search_result or r.result).reward} for r in top]


def run_metric(run_dir: Path) -> str:
    """The name of the score a search run recorded ("accuracy" when its config cannot be read, or
    "score" when its task of the user's own cannot be built here)."""
    from controller.search import SearchConfig, read_run_config

    try:
        config = SearchConfig.from_dict(read_run_config(run_dir)).eval
        return config.metric_name()
    except (NosError, TypeError, KeyError):
        return "score"


def confirm(run_dir: str | Path, *, top: int = 10, seeds: int = 5, workers: int | None = None,
            on_progress: Callable | None = None, **options: Any):
    """`nos confirm`: retrain the run's `top` best distinct rules and the baselines with `seeds` fresh
    seeds on the test split (stored in the run, resumable); a StudyReport. options go to
    controller.studies.confirm.confirm (e.g. epochs)."""
    from controller.studies.confirm import confirm as confirm_run
    from controller.studies.runner import Workers

    chosen = Workers() if workers is None else Workers(workers=workers)
    return confirm_run(Path(run_dir), top=top, seeds=seeds, workers=chosen,
                       on_progress=on_progress or (lambda p: None), **options)


def transfer(run_dir: str | Path | None = None, *, rules_file: str | Path | None = None,
             tasks: tuple[str, ...] = ("mnist1d-mlp", "mnist1d-shuffled", "charlm"),
             task_options: dict[str, Any] | None = None, seeds: int = 5, top: int = 3,
             workers: int | None = None, out_dir: str | Path | None = None,
             on_progress: Callable | None = None, **protocol: Any):
    """`nos transfer`: the run's confirmed rules (or a rules file's) and the baselines on held-out
    tasks (built-in names or "module:function", the latter built with task_options); a StudyReport.
    protocol: epochs, lrs, grid_epochs, data_dir, corpus."""
    from controller.studies.runner import Workers
    from controller.studies.transfer import Protocol, TransferSource
    from controller.studies.transfer import transfer as transfer_rules

    source = TransferSource(run_dir=Path(run_dir) if run_dir else None,
                            rules_file=Path(rules_file) if rules_file else None,
                            out_dir=Path(out_dir) if out_dir else None)
    chosen = Workers() if workers is None else Workers(workers=workers)
    return transfer_rules(source, tasks=tuple(tasks), seeds=seeds, top=top, workers=chosen,
                          protocol=Protocol(task_options=tuple(sorted((task_options or {}).items())), **protocol),
                          on_progress=on_progress or (lambda p: None))


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    return statistics.fmean(present), statistics.pstdev(present) if len(present) > 1 else 0.0
