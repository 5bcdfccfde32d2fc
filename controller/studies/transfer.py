"""`nos transfer`: take rules and the baselines to tasks the search never scored them on.

The rules come from a run's confirmation (its best search rules by mean test accuracy, those
confirmed better than every baseline first) or from a rules file. Each held-out task is trained
with the same baselines and the same seeds as in `nos confirm`, through the search's protocol (the
run's epochs and lr grid, unless given), and the trainings are stored in the run's store, or, for a
rules file, in a run directory of their own. Every final run is as long as the confirmation's
(LENGTH_FACTOR x the search's, 30 epochs for a default search) unless given: a rule transfers if it
wins where people train, not only on a short run.

    report = transfer(TransferSource(run_dir=Path("runs/ppo")), tasks=("mnist1d-mlp", "charlm"))
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.store import RunStore
from controller.studies.confirm import LENGTH_FACTOR
from controller.studies.confirm import STUDY as CONFIRM_STUDY
from controller.studies.confirm import run_eval_config
from controller.studies.contenders import Contender, baselines, read_rules_file, study_seeds
from controller.studies.runner import StudyProgress, StudyReport, Workers, run_study, study_task
from controller.studies.summary import summarise
from controller.workers import check_environment
from nos_symbolic.errors import SettingError
from nos_symbolic.evaluate import EvalConfig

STUDY = "transfer"
DEFAULT_TASKS: tuple[str, ...] = ("mnist1d-mlp", "mnist1d-shuffled", "charlm")


@dataclass(frozen=True)
class TransferSource:
    """Where the rules come from: a run directory (its confirmation) or a rules file. A rules file's
    trainings go to out_dir (created fresh by the CLI; the same folder again resumes)."""

    run_dir: Path | None = None
    rules_file: Path | None = None
    out_dir: Path | None = None


@dataclass(frozen=True)
class Protocol:
    """How held-out tasks are trained; None: the run's setting (the search's defaults for a rules
    file). data_dir: CIFAR-10's folder; corpus: charlm's folder of .py files (default: the stdlib)."""

    epochs: int | None = None
    lrs: tuple[float, ...] | None = None
    grid_epochs: float | None = None
    data_dir: str | None = None
    corpus: str | None = None
    task_options: tuple[tuple[str, Any], ...] = ()  # a module:function task's options


def confirmed_rules(run_dir: Path, top: int) -> list[Contender]:
    """The `top` best search rules of the run's confirmation by mean test accuracy, those whose
    verdict is `better` first; only rules trained with the most seeds count (a confirmation
    interrupted, or rerun with a smaller top, leaves rules with fewer seeds, whose means are not
    comparable)."""
    if top < 1:
        raise SettingError(f"{{0}} must be at least 1, got {top}", "top")
    with RunStore.open_readonly(run_dir) as store:
        rows = store.trainings(longest_confirmation(store))
    search = [r for r in rows if r.source == "search"]
    if not search:
        raise SettingError(f"{run_dir} holds no confirmation; run `nos confirm {run_dir}` first, or pass {{0}} FILE",
                           "rules")
    summaries = [s for s in summarise(rows, search[0].task) if s.source == "search"]
    most = max(len(s.seeds) for s in summaries)
    summaries = [s for s in summaries if len(s.seeds) == most]
    summaries.sort(key=lambda s: s.verdict != "better")  # stable: best mean first within each group
    return [Contender(s.rule, s.key, "search") for s in summaries[:top]]


def longest_confirmation(store: RunStore) -> str:
    """The run's confirmation study at the longest length it holds (`confirm@E`, else `confirm`)."""
    studies = {t.study for t in store.trainings()}
    long = [name for name in studies if name.startswith(CONFIRM_STUDY + "@")]
    return max(long, key=lambda name: int(name.partition("@")[2])) if long else CONFIRM_STUDY


def task_configs(tasks: tuple[str, ...], protocol: Protocol, base: EvalConfig) -> list[EvalConfig]:
    """One EvalConfig per held-out task: base's protocol with the given settings applied."""
    if not tasks:
        raise SettingError("{0} needs at least one task", "tasks")
    if len(set(tasks)) != len(tasks):
        raise SettingError(f"{{0}} names a task twice: {','.join(tasks)}", "tasks")
    out = []
    for name in tasks:
        data_dir = protocol.corpus if name == "charlm" else protocol.data_dir if name == "cifar10" else None
        out.append(EvalConfig(
            task=name, data_dir=data_dir,
            epochs=LENGTH_FACTOR * base.epochs if protocol.epochs is None else protocol.epochs,
            lrs=base.lrs if protocol.lrs is None else tuple(protocol.lrs),
            grid_epochs=base.grid_epochs if protocol.grid_epochs is None else protocol.grid_epochs,
            device=base.device, descent_threshold=base.descent_threshold, protocol=base.protocol,
            hurdle_quantile=None, halving=base.halving, **_own_task(name, protocol, base)))
    return out


def _own_task(name: str, protocol: Protocol, base: EvalConfig) -> dict[str, Any]:
    """A module:function task's options (the run's own, for the run's task) and where it imports from."""
    if ":" not in name:
        return {}
    same = name == base.task
    same_module = name.partition(":")[0] == base.task.partition(":")[0]
    return {"task_options": protocol.task_options or (base.task_options if same else ()),
            "task_path": base.task_path if same_module else None}


def transfer(source: TransferSource, tasks: tuple[str, ...] = DEFAULT_TASKS, seeds: int = 5,
             top: int = 3, protocol: Protocol = Protocol(), workers: Workers = Workers(),
             on_progress: Callable[[StudyProgress], None] = lambda p: None) -> StudyReport:
    """Train the rules and the baselines on each task with `seeds` seeds; summaries per task."""
    if (source.run_dir is None) == (source.rules_file is None):
        raise SettingError("give either a run directory or {0} FILE, not both or neither", "rules")
    if source.run_dir is not None:
        base = run_eval_config(source.run_dir, workers)
        rules = confirmed_rules(source.run_dir, top)
    else:
        base = EvalConfig(device=workers.device)
        rules = read_rules_file(source.rules_file)
    chosen = study_seeds(seeds, base.seed)
    configs = task_configs(tasks, protocol, base)
    check_environment(workers, configs[0])
    study_tasks = [study_task(c) for c in configs]  # every task's data, before anything is stored
    contenders = _without_baselines(rules) + baselines()
    run_dir = source.run_dir or _own_run_dir(source.out_dir)
    return run_study(run_dir, STUDY, contenders, study_tasks, chosen, workers, on_progress)

def _without_baselines(rules: list[Contender]) -> list[Contender]:
    """Rules that are not one of the baselines (a baseline is trained once, as the baseline)."""
    known = {c.key for c in baselines()} | {c.fingerprint for c in baselines() if c.fingerprint}
    return [r for r in rules if r.key not in known and (r.fingerprint is None or r.fingerprint not in known)]


def _own_run_dir(out_dir: Path | None) -> Path:
    from controller.rundir import create_run_dir, default_run_dir

    return create_run_dir(out_dir) if out_dir is not None else default_run_dir(STUDY)
