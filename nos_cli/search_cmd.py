"""Search for update rules: an LSTM controller trained with PPO (or random search, or regularized
evolution) samples rules; each unseen rule is scored by briefly training a small network.

With no arguments it runs the default search on mnist1d on every core and prints the best rules.
A run directory keeps the config, the SQLite store and the controller checkpoint; --resume continues
a run after Ctrl-C or a crash."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from controller.promotion import DEFAULT_BUDGET, DEFAULT_DECAYS, DEFAULT_LENGTHS, DEFAULT_PROMOTE
from nos_cli.task_option import TASK_HELP, parse_task_options, task_option_field
from nos_symbolic.evaluate import DEFAULT_PROTOCOL
from nos_symbolic.tasks.train import DEFAULT_LRS


@dataclass(frozen=True)
class Config:
    strategy: str = field(default="ppo", metadata={"help": "ppo (the paper's controller), random, evolution, "
                                                           "or module:Class (a Strategy of your own)"})
    budget: int = field(default=DEFAULT_BUDGET, metadata={"help": "trainings of a child network at any length "
                                                                  "(promotions included), not samples"})
    workers: int | None = field(default=None, metadata={"help": "worker processes (default: one per core; 0: in this process)"})
    run_dir: str | None = field(default=None, metadata={"help": "run directory: new or empty (default runs/STRATEGY-DATE-TIME)"})
    resume: bool = field(default=False, metadata={"help": "continue the run in --run-dir with its recorded settings "
                                                          "(--budget, --workers, --timeout, --backend, --address, "
                                                          "--cpus-per-eval and --gpus-per-eval may change)"})
    seed: int = field(default=0, metadata={"help": "the strategy's seed"})
    groups: int = field(default=3, metadata={"help": "5-token groups per rule"})
    round_size: int = field(default=16, metadata={"help": "new evaluations per round; the strategy learns between rounds"})
    timeout: float = field(default=300.0, metadata={"help": "seconds before an evaluation is killed"})
    backend: str = field(default="local", metadata={"choices": ["local", "ray"],
                                                    "help": "local worker processes, or a Ray cluster (pip install 'nos-symbolic[ray]')"})
    address: str | None = field(default=None, metadata={"help": "Ray address: auto or ray://host:10001 (default: a local Ray instance)"})
    cpus_per_eval: float = field(default=1.0, metadata={"help": "Ray: CPUs per evaluation"})
    gpus_per_eval: float = field(default=0.0, metadata={"help": "Ray: GPUs per evaluation (the child task then runs on cuda)"})
    task: str = field(default="mnist1d", metadata={"help": TASK_HELP})
    task_option: tuple[str, ...] = task_option_field()
    data_dir: str | None = field(default=None, metadata={"help": "the task's data folder (CIFAR-10)"})
    subset: int | None = field(default=None, metadata={"help": "CIFAR-10: training images to use"})
    epochs: int | None = field(default=None, metadata={"help": "epochs of each final run (default: 3 with halving, "
                                                                "5 with full)"})
    lrs: tuple[float, ...] = field(default=DEFAULT_LRS, metadata={"nargs": "+", "help": "learning-rate grid"})
    eval_seed: int = field(default=0, metadata={"help": "seed of every evaluation"})
    protocol: str = field(default=DEFAULT_PROTOCOL, metadata={"help": "how a rule is scored: halving (the default: "
                                                               "successive halving of the lr grid on the final "
                                                               "run itself, and a hurdle) or full (the paper's lr "
                                                               "grid, then the final run)"})
    hurdle_quantile: str = field(default="auto", metadata={"help": "halving: a final run below this quantile of recent "
                                                                   "rules after epoch 1 stops (auto: 0.25; none: no "
                                                                   "hurdle)"})
    lengths: tuple[int, ...] | None = field(default=None, metadata={
        "nargs": "*", "help": "epochs of the longer trainings the best rules are promoted to, in order (default: "
                             f"those of {' '.join(map(str, DEFAULT_LENGTHS))} longer than --epochs; none given: "
                             "every rule at --epochs only)"})
    promote: float = field(default=DEFAULT_PROMOTE, metadata={"help": "fraction of each length's rules promoted "
                                                                      "to the next"})
    decays: tuple[str, ...] = field(default=DEFAULT_DECAYS, metadata={
        "nargs": "*", "help": "schedules whose variants (rule)*decay are trained beside each rule promoted to "
                             "the first longer length (none given: no variants)"})
    objective: str = field(default="mean", metadata={"choices": ["mean", "best"], "help": "ppo: train on every "
                           "sample against a moving-average baseline (mean), or on the top --risk-epsilon of each "
                           "batch against its quantile (best: risk-seeking)"})
    risk_epsilon: float = field(default=0.25, metadata={"help": "--objective best: the fraction of each batch "
                                                                "trained on"})
    warm_start: tuple[str, ...] = field(default=(), metadata={
        "nargs": "*", "help": "ppo, evolution: named optimizers proposed first (sgd, momentum, adam, rmsprop, "
                             "powersign, addsign, each also -ld, -cd, -rd; all: every one the space expresses)"})
    top: int = field(default=10, metadata={"help": "best rules to print at the end"})
    given: frozenset[str] = field(default=frozenset(), metadata={"given": True})


# Command-line fields -> the SearchConfig settings they set (dotted: inside the evaluation config).
SETTINGS = {"strategy": "strategy", "budget": "budget", "workers": "workers", "seed": "seed", "groups": "n_groups",
            "round_size": "round_size", "timeout": "timeout", "backend": "backend", "address": "address",
            "cpus_per_eval": "cpus_per_eval", "gpus_per_eval": "gpus_per_eval", "task": "eval.task",
            "task_option": "eval.task_options",
            "data_dir": "eval.data_dir", "subset": "eval.subset", "epochs": "eval.epochs", "lrs": "eval.lrs",
            "eval_seed": "eval.seed", "protocol": "eval.protocol", "hurdle_quantile": "eval.hurdle_quantile",
            "lengths": "lengths", "promote": "promote", "decays": "decays", "objective": "objective",
            "risk_epsilon": "risk_epsilon", "warm_start": "warm_start"}


def hurdle_quantile(text: str) -> float | str | None:
    """--hurdle-quantile: auto (the protocol's default), none, or a number from 0 to 1."""
    from nos_symbolic.errors import NosError
    from nos_symbolic.evaluate import AUTO

    word = str(text).strip().lower()
    if word == AUTO:
        return AUTO
    if word in ("none", "off"):
        return None
    try:
        return float(word)
    except ValueError:
        raise NosError(f"--hurdle-quantile must be a number from 0 to 1, auto or none, got {text!r}") from None


def search_config(config: Config):
    """The SearchConfig this command line describes."""
    import os

    from controller.ppo import PPOConfig
    from controller.search import SearchConfig
    from controller.warmstart import warm_start_names
    from nos_symbolic.evaluate import EvalConfig

    eval_config = EvalConfig(task=config.task, task_options=tuple(parse_task_options(config.task_option).items()),
                             data_dir=config.data_dir, subset=config.subset, epochs=config.epochs,
                             lrs=tuple(config.lrs), seed=config.eval_seed, protocol=config.protocol,
                             hurdle_quantile=hurdle_quantile(config.hurdle_quantile),
                             device="cuda" if config.gpus_per_eval > 0 else "cpu")
    workers = config.workers if config.workers is not None else (os.cpu_count() or 1)
    PPOConfig(objective=config.objective, risk_epsilon=config.risk_epsilon)  # checked before a run starts
    return SearchConfig(strategy=config.strategy, budget=config.budget, workers=workers, seed=config.seed,
                        n_groups=config.groups, round_size=config.round_size, timeout=config.timeout,
                        backend=config.backend, address=config.address, cpus_per_eval=config.cpus_per_eval,
                        gpus_per_eval=config.gpus_per_eval,
                        lengths=None if config.lengths is None else tuple(config.lengths),
                        promote=config.promote, decays=tuple(config.decays), eval=eval_config,
                        objective=config.objective, risk_epsilon=config.risk_epsilon,
                        warm_start=",".join(warm_start_names(config.warm_start)))


def run(config: Config) -> int:
    from controller.search import Search, resume_config
    from nos_symbolic.errors import NosError

    if config.top < 0:
        raise NosError(f"--top must be an integer >= 0, got {config.top}")
    if config.resume:
        if config.run_dir is None:
            raise NosError("--resume needs --run-dir: the run to continue")
        run_dir = Path(config.run_dir)
        explicit = {SETTINGS[name] for name in config.given if name in SETTINGS}
        search_cfg = resume_config(run_dir, search_config(config), explicit)
    else:
        search_cfg = search_config(config)  # every value checked before a directory is made
        run_dir = Path(config.run_dir) if config.run_dir else None  # None: Search picks a fresh one
    search = Search(search_cfg, run_dir, resume=config.resume)
    for note in search.notes:
        sys.stderr.write(f"note: {note}\n")
    reporter = Reporter(search_cfg.budget)
    previous = _interrupt_on_sigterm()
    try:
        progress = search.run(reporter.update)
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


class Reporter:
    """A progress bar on a terminal; a line every `every` seconds otherwise."""

    def __init__(self, budget: int, every: float = 10.0) -> None:
        self.tty, self.every, self.last = sys.stderr.isatty(), every, 0.0
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=budget, desc="search", unit="eval", file=sys.stderr, dynamic_ncols=True)

    def update(self, p) -> None:
        info = f"hits {p.cache_hits}/{p.samples}  rejected {p.rejected}  best {p.best_reward:.4f}  {p.best_rule[:50]}"
        if self.bar is not None:
            self.bar.n = p.evaluations
            self.bar.set_postfix_str(info, refresh=True)
        elif time.monotonic() - self.last >= self.every or p.evaluations >= p.budget:
            self.last = time.monotonic()
            sys.stderr.write(f"[{p.wall_seconds:7.1f}s] evaluations {p.evaluations}/{p.budget}  {info}\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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
