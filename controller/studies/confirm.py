"""`nos confirm`: re-test a search run's best rules on fresh seeds and on the test split.

The best of a few hundred noisy validation scores is partly luck. Confirmation trains the run's K
best distinct rules and the baselines (contenders.BASELINES) with N seeds that the search never used,
the same N for every contender, through the search's own protocol on the search's task, and scores
them on the test split, which no reward ever saw. summary.py turns the trainings into means,
intervals, paired tests against the best baseline and steps-to-target.

It does so twice: at the search's own length (study `confirm`) and at the length people train
(study `confirm@E`, E epochs; by default LENGTH_FACTOR x the search's), because what wins a short
run can lose a long one (short-horizon bias). The report is the long one, with the short one beside
it, so a rule whose verdict flips between the two lengths shows.

    report = confirm(Path("runs/ppo"), top=10, seeds=5, workers=Workers(workers=2), epochs=30)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from controller.store import STORE_FILENAME, RunStore
from controller.studies.contenders import baselines, best_of_run, study_seeds
from controller.studies.runner import StudyProgress, StudyReport, Workers, run_study, study_task
from controller.workers import check_environment
from nos_symbolic.errors import NosError

STUDY = "confirm"
LENGTH_FACTOR = 10  # the default confirmation length: 10x the search's final run (3 -> 30 epochs)


def long_study(epochs: int) -> str:
    """The name of the confirmation at `epochs` epochs in the store."""
    return f"{STUDY}@{epochs}"


def confirm_epochs(search_epochs: int, epochs: int | None) -> int:
    """The confirmation's length: `epochs`, or LENGTH_FACTOR x the search's when None."""
    if epochs is None:
        return LENGTH_FACTOR * search_epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise NosError(f"the confirmation length (epochs) must be an integer >= 1, got {epochs!r}")
    return epochs


def run_eval_config(run_dir: Path, workers: Workers):
    """The evaluation protocol of a search run, on the device the study's workers have."""
    from controller.run_config import CONFIG_FILE, SearchConfig, read_run_config

    if not (run_dir / STORE_FILENAME).is_file():
        what = "not found" if not run_dir.exists() else f"is not a run directory (no {STORE_FILENAME})"
        raise NosError(f"run directory {run_dir} {what}")
    if not (run_dir / CONFIG_FILE).is_file():
        with RunStore.open_readonly(run_dir) as store:
            if store.get_meta("config") is None:
                raise NosError(f"{run_dir} holds no search (no {CONFIG_FILE}); pass the run directory "
                               f"of a `nos search`")
    recorded = read_run_config(run_dir)  # a config.json that is no JSON object is refused here, saying so
    try:
        config = SearchConfig.from_dict(recorded)
    except (TypeError, ValueError, AttributeError, KeyError) as err:  # NosError is a ValueError
        raise NosError(f"the config recorded in {run_dir} is not valid: {err}") from None
    return replace(config.eval, device=workers.device)


def confirm(run_dir: Path, top: int = 10, seeds: int = 5, workers: Workers = Workers(),
            on_progress: Callable[[StudyProgress], None] = lambda p: None, epochs: int | None = None) -> StudyReport:
    """Train the run's `top` best distinct rules and the baselines with `seeds` fresh seeds each, at
    the search's length and at `epochs` (default LENGTH_FACTOR x the search's), storing every training
    in the run's store (resumable). The report holds the summaries at `epochs`, and in `beside` those
    at the search's length (the same contenders and seeds)."""
    run_dir = Path(run_dir)
    config = run_eval_config(run_dir, workers)
    length = confirm_epochs(config.epochs, epochs)
    chosen = study_seeds(seeds, config.seed)
    with RunStore.open_readonly(run_dir) as store:
        contenders = best_of_run(store, top, baselines()) + baselines()
    check_environment(workers, config)
    short = run_study(run_dir, STUDY, contenders, [study_task(config)], chosen, workers, on_progress)
    if length == config.epochs:
        return replace(short, epochs=length, beside=short.summaries, beside_epochs=length)
    long = replace(config, epochs=length, hurdle_quantile=None)
    report = run_study(run_dir, long_study(length), contenders, [study_task(long)], chosen, workers, on_progress)
    return replace(report, epochs=length, beside=short.summaries, beside_epochs=config.epochs)
