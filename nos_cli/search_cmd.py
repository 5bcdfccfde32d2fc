"""Search for update rules: an LSTM controller trained with PPO (or random search, or regularized
evolution) samples rules; each unseen rule is scored by briefly training a small network.

With no arguments it runs the default search on mnist1d on every core and prints the best rules.
A run directory keeps the config, the SQLite store and the controller checkpoint; --resume continues
a run after Ctrl-C or a crash."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from controller.run_config import RESUMABLE_CHANGES, SearchConfig
from nos_cli.config import command_config, explicit_settings, settings_from
from nos_cli.progress import ProgressReporter


@dataclass(frozen=True)
class Options:
    """`nos search`'s own options; the run's settings are SearchConfig's (controller/run_config.py)."""

    run_dir: str | None = field(default=None, metadata={"help": "run directory: new or empty (default "
                                                                "runs/STRATEGY-DATE-TIME)"})
    resume: bool = field(default=False, metadata={"help": "continue the run in --run-dir with its recorded "
                                                          "settings (" + ", ".join(
                                                              "--" + name.replace("_", "-")
                                                              for name in sorted(RESUMABLE_CHANGES))
                                                          + " may change)"})
    top: int = field(default=10, metadata={"help": "best rules to print at the end"})


Config = command_config(Options, SearchConfig, skip=frozenset({"eval.device"}))


def search_config(config: Config) -> SearchConfig:
    """The SearchConfig this command line describes: its settings given, the others their defaults."""
    return settings_from(config, SearchConfig)


def run(config: Config) -> int:
    from controller.search import Search, resume_config
    from nos_symbolic.errors import NosError

    if config.top < 0:
        raise NosError(f"--top must be an integer >= 0, got {config.top}")
    if config.resume:
        if config.run_dir is None:
            raise NosError("--resume needs --run-dir: the run to continue")
        run_dir = Path(config.run_dir)
        search_cfg = resume_config(run_dir, search_config(config), explicit_settings(config))
    else:
        search_cfg = search_config(config)  # every value checked before a directory is made
        run_dir = Path(config.run_dir) if config.run_dir else None  # None: Search picks a fresh one
    search = Search(search_cfg, run_dir, resume=config.resume)
    for note in search.notes:
        sys.stderr.write(f"note: {note}\n")
    reporter = ProgressReporter("search", "training")
    previous = _interrupt_on_sigterm()
    try:
        progress = search.run(lambda p: _show_search(reporter, p))
    except KeyboardInterrupt:
        reporter.close()
        sys.stderr.write(_interrupted(search))
        return 130
    finally:
        _restore_sigterm(previous)
        reporter.close()
        search.close()
    print(_summary(progress, config.top, search.run_dir))
    return 0


def _raise_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (kill, Slurm, Kubernetes) stops a search as Ctrl-C does."""
    raise KeyboardInterrupt(f"signal {signum}")


def _interrupt_on_sigterm() -> object:
    """Make SIGTERM raise KeyboardInterrupt in the main thread; the handler it replaces (None when
    this is not the main thread, where Python allows no handler)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def _restore_sigterm(previous: object) -> None:
    """Put back the SIGTERM handler `_interrupt_on_sigterm` replaced."""
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(search) -> str:
    """What Ctrl-C tells the user: what was kept, and the command that continues the run."""
    import shlex

    kept = ""
    if search.store is not None:
        kept = f"{search.store.n_evaluations()} evaluations and {search.store.n_samples()} samples are recorded; "
    return (f"interrupted: {kept}the run is in {search.run_dir}\n"
            f"resume it with: nos search --run-dir {shlex.quote(str(search.run_dir))} --resume\n")


def _show_search(reporter: ProgressReporter, p) -> None:
    """One search progress report: trainings of the budget, cache hits, rejections, the best rule."""
    reporter.show(p.evaluations, p.budget, f"hits {p.cache_hits}/{p.samples}  rejected {p.rejected}  "
                  f"best {p.best_reward:.4f}  {p.best_rule[:50]}", getattr(p, "evaluations_at_start", 0))


def _summary(p, top_k: int, run_dir: Path) -> str:
    from controller.api import run_metric

    from controller.api import leaderboard
    from nos_cli.top_cmd import table

    lines = [f"{p.evaluations} trainings ({p.promoted} of them promotions to longer runs), {p.samples} samples "
             f"({p.cache_hits} cache hits, {p.rejected} rejected by the pre-screen); {_throughput(p)}", "",
             table(leaderboard(run_dir, top_k))]
    lines += ["", f"score: {run_metric(run_dir)} (reward on validation, test on the test split)",
              f"run directory: {run_dir}"]
    return "\n".join(lines)


def _throughput(p) -> str:
    """This invocation's trainings and their rate: a resumed run's earlier trainings are not counted."""
    new = p.evaluations - getattr(p, "evaluations_at_start", 0)
    minutes = max(p.wall_seconds, 1e-9) / 60
    resumed = f" ({p.evaluations - new} were already stored)" if new != p.evaluations else ""
    return f"{new} trained in {p.wall_seconds:.0f} s{resumed}: {new / minutes:.1f} trainings/min"
