"""Where trainings run: `Workers` (local worker processes or a Ray cluster), the checks of the machine
that will run them, and the executor that runs evaluations there. A search and a study both take their
workers from here; neither imports the other.

    workers = Workers(workers=2).with_timeout(STUDY_TIMEOUT)
    with evaluation_executor(workers, EvalConfig()) as executor:
        executor.submit(0, {"rule": "sign(m)*g", "config": EvalConfig().to_dict()})
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from nos_symbolic.errors import SettingError
from nos_symbolic.settings import check_int, check_number, setting

if TYPE_CHECKING:
    from controller.executors import Executor
    from nos_symbolic.eval_config import EvalConfig

BACKENDS = ("local", "ray")
WORKERS_PER_CORE = 4  # local workers beyond this many per core only queue for the CPU
SEARCH_TIMEOUT = 300.0  # seconds: a search's evaluation is a few epochs of a small network
# A study trains held-out tasks far larger than the search's (charlm's lr grid and final run take
# minutes on a busy core).
STUDY_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Workers:
    """Where trainings run; each field is a setting (nos_symbolic/settings.py)."""

    workers: int = setting(default_factory=lambda: os.cpu_count() or 1,
                           help="worker processes (default: one per core; 0: in this process)")
    timeout: float | None = setting(None, help="seconds before one training is killed (default: 300 for a "
                                               "search's evaluation, 3600 for a study's training)")
    backend: str = setting("local", choices=list(BACKENDS), help="local worker processes, or a Ray cluster "
                                                                 "(pip install 'nos-symbolic[ray]')")
    address: str | None = setting(None, help="Ray address: auto or ray://host:10001 (default: a local Ray instance)")
    cpus_per_eval: float = setting(1.0, help="Ray: CPUs per training")
    gpus_per_eval: float = setting(0.0, help="Ray: GPUs per training (the child task then runs on cuda)")

    def __post_init__(self) -> None:
        check_int("workers", self.workers, 0)
        if self.timeout is not None:
            check_number("timeout", self.timeout, strict=True)
        check_number("cpus_per_eval", self.cpus_per_eval)
        check_number("gpus_per_eval", self.gpus_per_eval)
        if self.backend not in BACKENDS:
            raise SettingError(f"unknown backend {self.backend!r} ({{0}}); expected one of {', '.join(BACKENDS)}",
                               "backend")
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise SettingError(f"{{0}} must be a Ray address such as auto or ray://host:10001, got "
                               f"{self.address!r}", "address")

    def with_timeout(self, default: float) -> "Workers":
        """These workers with `default` as the timeout when none was set (a search's evaluation and a
        study's training take different times)."""
        return self if self.timeout is not None else replace(self, timeout=default)

    @property
    def device(self) -> str:
        """Where a training runs its network: cuda when each gets a GPU."""
        return "cuda" if self.gpus_per_eval > 0 else "cpu"


def check_environment(workers: Workers, config: "EvalConfig") -> None:
    """Refuse, before anything is written, trainings this machine cannot run: Ray missing, too many
    local workers, CUDA asked for and absent, data that is not there."""
    cores = os.cpu_count() or 1
    if workers.backend == "ray":
        from controller.ray_executor import require_ray

        require_ray()
    elif workers.workers > WORKERS_PER_CORE * cores:
        raise SettingError(f"{{0}} {workers.workers} is more than {WORKERS_PER_CORE} per core ({cores} cores "
                           f"here: at most {WORKERS_PER_CORE * cores}); pass a smaller {{0}}", "workers")
    if workers.backend == "local" and workers.gpus_per_eval > 0:
        raise SettingError("{0} applies to the ray backend; pass {1} ray", "gpus_per_eval", "backend")
    if workers.backend == "local" or workers.address is None:  # trainings run on this machine
        config.check_device()
        config.check_data()


def evaluation_executor(workers: Workers, config: "EvalConfig") -> "Executor":
    """The executor that runs evaluations (nos_symbolic.evaluate.evaluate_job): worker processes here,
    or tasks on a Ray cluster; each worker builds `config`'s task once, before its first job."""
    from controller.executors import make_executor
    from nos_symbolic.evaluate import evaluate_job, warm_worker

    assert workers.timeout is not None, "the caller sets the timeout (Workers.with_timeout)"
    if workers.backend == "ray":
        from controller.ray_executor import RayExecutor

        return RayExecutor(evaluate_job, max(workers.workers, 1), workers.timeout, initializer=warm_worker,
                           initargs=(config.to_dict(),), address=workers.address,
                           num_cpus=workers.cpus_per_eval, num_gpus=workers.gpus_per_eval)
    return make_executor(evaluate_job, workers.workers, workers.timeout, initializer=warm_worker,
                         initargs=(config.to_dict(),))
