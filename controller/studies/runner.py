"""Run a study's trainings on the search's executors and store each one as it finishes.

A study is every (contender, task, seed) triple it names. Triples already in the store are skipped,
the rest go to the executor (local worker processes or Ray, as in the search), and each finished
training is one store transaction, so a study killed at any point (kill -9 included) resumes where it
stopped: nothing is trained twice and nothing finished is lost. Jobs are submitted seed by seed, so
an interrupted study holds complete seeds, which pair, rather than a few rules with every seed.

Each training runs the evaluation protocol of the search (lr grid, then the final run) with the
triple's seed, and records the test split and the final run's per-epoch validation curve as well.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from controller.lock import run_lock
from controller.workers import STUDY_TIMEOUT, Workers, evaluation_executor
from controller.store import RunStore, TrainingRow
from controller.studies.contenders import Contender
from controller.studies.summary import Summary, summarise
from nos_symbolic.errors import NosError
from nos_symbolic.evaluate import EvalConfig
from nos_symbolic.result import EvalResult

# A study's protocol per task is kept in the store's meta under this prefix + study + task.
_PROTOCOL_META = "study-protocol"


@dataclass(frozen=True)
class StudyTask:
    """A task as a study trains it: its protocol (seed replaced per training) and its chance level,
    the accuracy that a training killed as diverged or failed counts as (for a task without one,
    such as a regression, the untrained network's test score)."""

    config: EvalConfig
    chance: float

    @property
    def name(self) -> str:
        return self.config.task


@dataclass(frozen=True)
class Job:
    contender: Contender
    task: StudyTask
    seed: int


@dataclass
class StudyProgress:
    """What a study reports after each training (the CLI draws it)."""

    total: int = 0
    stored: int = 0  # found in the store when the study started
    done: int = 0  # trained in this invocation
    last: TrainingRow | None = None
    wall_seconds: float = 0.0


@dataclass(frozen=True)
class StudyReport:
    """What a study found: its run directory, seeds and summaries per task (best first)."""

    run_dir: Path
    seeds: list[int]
    summaries: dict[str, list[Summary]]
    progress: StudyProgress
    epochs: int | None = None  # the length of every final run (None: the task's protocol's)
    beside: dict[str, list[Summary]] | None = None  # the same contenders at the search's length
    beside_epochs: int | None = None


def study_task(config: EvalConfig) -> StudyTask:
    """Build the task once here, so missing data or a bad option fails before anything is stored."""
    from nos_symbolic.evaluate import task_for
    from nos_symbolic.tasks.train import untrained_score

    config.check_data()
    task = task_for(config)
    return StudyTask(config, task.chance if task.chance is not None else untrained_score(task, split="test"))


def plan(study: str, contenders: list[Contender], tasks: list[StudyTask], seeds: list[int],
         store: RunStore) -> tuple[list[Job], int]:
    """The jobs still to run (seed by seed) and how many of the study's trainings are stored."""
    done = {(t.key, t.task, t.seed) for t in store.trainings(study)}
    wanted = [Job(c, t, s) for s in seeds for t in tasks for c in contenders]
    todo = [j for j in wanted if (j.contender.key, j.task.name, j.seed) not in done]
    return todo, len(wanted) - len(todo)


def selected(rows: list[TrainingRow], contenders: list[Contender], seeds: list[int]) -> list[TrainingRow]:
    """The trainings of these contenders with these seeds (a store may hold more from other calls)."""
    keys, wanted = {c.key for c in contenders}, set(seeds)
    return [r for r in rows if r.key in keys and r.seed in wanted]


def protocol_meta_key(study: str, task_name: str) -> str:
    """The store meta key under which a study records its protocol on a task."""
    return f"{_PROTOCOL_META}:{study}:{task_name}"


def protocol_record(task: StudyTask) -> dict:
    """What a study records as its protocol on a task: the task's EvalConfig but the seed (it varies
    per training), the device (it changes numbers only at rounding level), the folder a task of the
    user's own is imported from, and task options when there are none (as recorded before they were)."""
    return {k: v for k, v in task.config.to_dict().items()
            if k not in ("seed", "device", "task_path") and not (k == "task_options" and not v)}


def check_protocol(store: RunStore, study: str, tasks: list[StudyTask]) -> None:
    """Record each task's protocol on first use; refuse a later invocation that trains the same
    study and task differently (its trainings would not compare with the stored ones)."""
    for task in tasks:
        key = protocol_meta_key(study, task.name)
        protocol = protocol_record(task)
        stored = store.get_meta(key)
        if stored is None:
            store.set_meta(key, protocol)
        elif stored != protocol:
            diff = "; ".join(f"{k}: {stored.get(k)!r} stored, {protocol.get(k)!r} now"
                             for k in sorted(set(stored) | set(protocol)) if stored.get(k) != protocol.get(k))
            raise NosError(f"the {study} trainings on {task.name} in {store.path.parent} used another "
                           f"protocol ({diff}); use the same settings, or another run directory")


def run_jobs(store: RunStore, study: str, jobs: list[Job], workers: Workers, stored: int = 0,
             on_progress: Callable[[StudyProgress], None] = lambda p: None) -> StudyProgress:
    """Train every job on the executor, recording each training as it finishes."""
    progress = StudyProgress(total=stored + len(jobs), stored=stored)
    on_progress(progress)
    if not jobs:
        return progress
    start = time.perf_counter()
    queue = deque(enumerate(jobs))
    with _executor(workers, jobs[0].task.config) as executor:
        while queue or executor.in_flight():
            # Only as many in flight as can run, so the in-process executor (--workers 0) records
            # each training as it finishes too.
            while queue and executor.in_flight() < executor.capacity:
                i, job = queue.popleft()
                config = replace(job.task.config, seed=job.seed)
                executor.submit(i, {"rule": job.contender.rule, "config": config.to_dict(), "curve": True})
            for completion in executor.poll(timeout=1.0):
                job = jobs[completion.job_id]
                row = training_row(study, job, completion.result)
                store.record_training(row)
                progress.done += 1
                progress.last = row
                progress.wall_seconds = time.perf_counter() - start
                on_progress(progress)
    return progress


def run_study(run_dir: Path, study: str, contenders: list[Contender], tasks: list[StudyTask],
              seeds: list[int], workers: Workers,
              on_progress: Callable[[StudyProgress], None] = lambda p: None) -> StudyReport:
    """Hold the run's lock, train what the store lacks, and summarise exactly these contenders and
    seeds per task (the store may hold more, from other calls)."""
    with run_lock(run_dir, f"nos {study}"), RunStore.open(run_dir) as store:
        check_protocol(store, study, tasks)
        jobs, stored = plan(study, contenders, tasks, seeds, store)
        progress = run_jobs(store, study, jobs, workers, stored, on_progress)
        rows = selected(store.trainings(study), contenders, seeds)
    return StudyReport(run_dir, seeds, {t.name: summarise(rows, t.name) for t in tasks}, progress)


def training_row(study: str, job: Job, result: EvalResult) -> TrainingRow:
    """The store row of one finished training; metrics keep what the summaries need besides the
    accuracies (the curve for steps-to-target, losses for bits per character, the chance level)."""
    metrics = {
        "val_curve": [list(point) for point in result.val_curve],
        "val_loss": result.val_loss,
        "test_loss": result.test_loss,
        "steps": result.steps,
        "chance": job.task.chance,
        "reason": result.reason,
    }
    return TrainingRow(study=study, rule=job.contender.rule, key=job.contender.key,
                       source=job.contender.source, task=job.task.name, seed=job.seed,
                       status=result.status, lr=result.lr, val_acc=result.val_acc,
                       test_acc=result.test_acc, metrics=metrics, seconds=result.seconds)


def _executor(workers: Workers, config: EvalConfig):
    """The search's executor (worker processes, or a Ray cluster), warmed with the first task."""
    return evaluation_executor(workers.with_timeout(STUDY_TIMEOUT), config)
