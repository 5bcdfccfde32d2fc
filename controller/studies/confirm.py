"""`nos confirm`: re-test a search run's best rules on fresh seeds and on the test split.

The best of a few hundred noisy validation scores is partly luck. Confirmation trains the run's K
best distinct rules and the baselines (contenders.BASELINES) with N seeds that the search never used,
the same N for every contender, through the search's own protocol on the search's task, and scores
them on the test split, which no reward ever saw. summary.py turns the trainings into means,
intervals, paired tests against the best baseline and steps-to-target.

    report = confirm(Path("runs/ppo"), top=10, seeds=5, workers=Workers(workers=2))
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from controller.store import STORE_FILENAME, RunStore
from controller.studies.contenders import baselines, best_of_run, study_seeds
from controller.studies.runner import StudyProgress, StudyReport, Workers, check_workers, run_study, study_task
from nos_symbolic.errors import NosError

STUDY = "confirm"


def run_eval_config(run_dir: Path, workers: Workers):
    """The evaluation protocol of a search run, on the device the study's workers have."""
    from controller.search import CONFIG_FILE, SearchConfig, read_run_config

    if not (run_dir / STORE_FILENAME).is_file():
        what = "not found" if not run_dir.exists() else f"is not a run directory (no {STORE_FILENAME})"
        raise NosError(f"run directory {run_dir} {what}")
    if not (run_dir / CONFIG_FILE).is_file():
        with RunStore.open_readonly(run_dir) as store:
            if store.get_meta("config") is None:
                raise NosError(f"{run_dir} holds no search (no {CONFIG_FILE}); pass the run directory "
                               f"of a `nos search`")
    try:
        config = SearchConfig.from_dict(read_run_config(run_dir))
    except (TypeError, NosError) as err:
        raise NosError(f"the config recorded in {run_dir} is not valid: {err}") from None
    return replace(config.eval, device="cuda" if workers.gpus_per_eval > 0 else "cpu")


def confirm(run_dir: Path, top: int = 10, seeds: int = 5, workers: Workers = Workers(),
            on_progress: Callable[[StudyProgress], None] = lambda p: None) -> StudyReport:
    """Train the run's `top` best distinct rules and the baselines with `seeds` fresh seeds each,
    storing every training in the run's store (resumable); summaries of exactly those contenders
    and seeds."""
    run_dir = Path(run_dir)
    config = run_eval_config(run_dir, workers)
    chosen = study_seeds(seeds, config.seed)
    with RunStore.open_readonly(run_dir) as store:
        contenders = best_of_run(store, top, baselines()) + baselines()
    check_workers(workers, config)
    task = study_task(config)
    return run_study(run_dir, STUDY, contenders, [task], chosen, workers, on_progress)
