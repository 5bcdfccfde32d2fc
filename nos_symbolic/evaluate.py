"""Score one rule (or one of torch's baselines) on a child task: the paper's reward.

    result = evaluate("powersign-cd", EvalConfig())          # pre-screen, lr grid, final run
    result = evaluate("adam", EvalConfig())                   # torch.optim.Adam, same protocol

The protocol: (1) pre-screen the rule without training (prescreen.py); a rejection is a result with
its reason. (2) Search the learning rate and train the final run at the best, by the config's
protocol (tasks/protocol.py: `halving` by default, or the paper's grid-then-final-run `full`).
(3) Early kills end hopeless runs as diverged or failed. An evaluation that raises is recorded as
`error` with the exception, never propagated: numerically wild rules are a normal outcome of a
search. Same seed, same result on CPU.

`evaluate_job` is the entry point worker processes run: its payload is plain data (rule text and
config), and each worker builds the task's data once, not once per evaluation.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Sequence

from nos_symbolic.errors import NosError, check_known_keys
from nos_symbolic.result import EvalResult
from nos_symbolic.tasks.train import DEFAULT_GRID_EPOCHS, DEFAULT_LRS

if TYPE_CHECKING:
    from nos_symbolic.tasks.protocol import Halving

BASELINE_NAMES: tuple[str, ...] = ("sgd", "momentum", "adam", "rmsprop", "adam-cosine")
DEFAULT_PROTOCOL = "halving"  # bench/bench_protocol.py: 2x the evaluations per minute of full, less noise
AUTO = "auto"  # hurdle_quantile: the protocol's default


def halving_pairs(knobs: "Halving") -> tuple[tuple[str, Any], ...]:
    """A Halving's knobs as sorted (name, value) pairs: hashable, and a JSON object in config.json."""
    return tuple(sorted(asdict(knobs).items()))


@dataclass(frozen=True)
class EvalConfig:
    """How a rule is scored. Every field is plain data so it travels to worker processes.

    task:        mnist1d (default), mnist1d-mlp, mnist1d-shuffled, cifar10, charlm, or "module:function"
                 for a task of the user's own (tasks/custom.py)
    data_dir:    CIFAR-10 folder (cifar-10-batches-py/ or train/<class>/, test/<class>/)
    subset:      CIFAR-10 training images to use (class-balanced; None: all)
    epochs:      length of the final run (None: the protocol's default, 3 with halving, 5 with full;
                 for a task of the user's own, its Task's epochs when it sets them)
    lrs:         the learning-rate grid (one lr: no grid)
    grid_epochs: length of each grid run (full)
    seed:        model initialisation, data order and the optimizer's random draws
    device:      cpu or cuda
    descent_threshold: pre-screen's minimum mean cos(update, g)
    protocol:    halving (the default: successive halving of the grid on prefixes of the final run,
                 the winner's run continued, validation averaged over its last epoch, a hurdle;
                 tasks/protocol.py) or full (the lr grid, then the final run; the paper's)
    hurdle_quantile: halving only: a final run whose validation metric after the hurdle epoch is
                 below this quantile of the search's recent rules at that step stops as `hurdled`
                 ("auto": the protocol's default, 0.25 with halving and none with full; None: no hurdle;
                 bench/bench_protocol.py measures what it costs the ranking)
    halving:     the halving protocol's knobs (tasks/protocol.py Halving) as sorted (name, value)
                 pairs, recorded so a run resumes with the protocol it started with (None: the
                 defaults with halving; always None with full)
    task_options: the task's options (--task-option key=value) as sorted (name, value) pairs: the
                 keyword arguments of a task of the user's own, or a built-in loader's data options
    task_path:   for "module:function", the directory the module is imported from (found when the
                 config is made, then recorded, so worker processes and resumed runs import it there)
    """

    task: str = "mnist1d"
    data_dir: str | None = None
    subset: int | None = None
    epochs: int | None = None
    lrs: tuple[float, ...] = DEFAULT_LRS
    grid_epochs: float = DEFAULT_GRID_EPOCHS
    seed: int = 0
    device: str = "cpu"
    descent_threshold: float = 0.15
    protocol: str = DEFAULT_PROTOCOL
    hurdle_quantile: float | str | None = AUTO
    halving: tuple[tuple[str, Any], ...] | None = None
    task_options: tuple[tuple[str, Any], ...] = ()
    task_path: str | None = None

    def __post_init__(self) -> None:
        """Fill in the protocol's defaults (epochs, hurdle, knobs), then refuse a value no evaluation
        could use, naming its option; the data and the device are checked by `check_data` and
        `check_device`, on the machine that will use them."""
        from nos_symbolic.tasks import TASK_NAMES, data_options, is_custom
        from nos_symbolic.tasks.protocol import (
            DEFAULT_HALVING,
            PROTOCOL_EPOCHS,
            PROTOCOL_HURDLES,
            PROTOCOL_NAMES,
            Halving,
        )

        if self.protocol not in PROTOCOL_NAMES:
            raise NosError(f"unknown protocol {self.protocol!r} (--protocol); expected one of "
                           f"{', '.join(PROTOCOL_NAMES)}")
        if self.epochs is None and not is_custom(self.task):
            object.__setattr__(self, "epochs", PROTOCOL_EPOCHS[self.protocol])
        if isinstance(self.hurdle_quantile, str) and self.hurdle_quantile == AUTO:
            object.__setattr__(self, "hurdle_quantile", PROTOCOL_HURDLES[self.protocol])
        if self.protocol == "halving":
            knobs = DEFAULT_HALVING if self.halving is None else self.halving
            try:
                knobs = knobs if isinstance(knobs, Halving) else Halving(**dict(knobs))
            except (TypeError, ValueError) as err:
                raise NosError(f"the halving protocol's knobs are not valid: {err}") from None
            object.__setattr__(self, "halving", halving_pairs(knobs))
        elif self.halving is not None:
            raise NosError("halving knobs apply to --protocol halving only")

        self._check_task()
        self._check_int("--epochs", self.epochs, 1)
        self._check_int("the evaluation seed (--eval-seed)", self.seed, 0)
        if self.subset is not None:
            self._check_int("--subset", self.subset, 1)
        if not isinstance(self.lrs, tuple) or not self.lrs:
            raise NosError(f"--lrs needs at least one learning rate, got {self.lrs!r}")
        for lr in self.lrs:
            self._check_positive("--lrs", lr, ": every learning rate")
        self._check_positive("--grid-epochs", self.grid_epochs)
        if self.hurdle_quantile is not None:
            if isinstance(self.hurdle_quantile, bool) or not isinstance(self.hurdle_quantile, (int, float)) \
                    or not 0 <= self.hurdle_quantile <= 1:
                raise NosError(f"--hurdle-quantile must be a number from 0 to 1, got {self.hurdle_quantile!r}")
            if self.protocol == "full":
                raise NosError("--hurdle-quantile applies to --protocol halving; the full protocol has no hurdle")
        if isinstance(self.descent_threshold, bool) or not isinstance(self.descent_threshold, (int, float)) \
                or not -1 <= self.descent_threshold <= 1:
            raise NosError(f"descent_threshold must be a cosine from -1 to 1, got {self.descent_threshold!r}")
        if not isinstance(self.device, str) or not (self.device == "cpu" or self.device.startswith("cuda")):
            raise NosError(f"--device must be cpu, cuda or cuda:N, got {self.device!r}")
        params = self._loader_parameters()
        for name, flag in (("data_dir", "--data-dir"), ("subset", "--subset")):
            if getattr(self, name) is not None and name not in params:
                takers = [t for t in TASK_NAMES if name in data_options(t)]
                raise NosError(f"{flag} does not apply to the {self.task} task (only to {', '.join(takers)})")
        required = params.get("data_dir")
        if self.data_dir is None and required is not None and required.default is required.empty:
            raise NosError(f"the {self.task} task needs data_dir (--data-dir): the folder holding its data")
        if self.data_dir is not None and (not isinstance(self.data_dir, str) or not self.data_dir.strip()):
            raise NosError(f"--data-dir must be a folder, got {self.data_dir!r}")

    @staticmethod
    def _check_int(flag: str, value: Any, low: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise NosError(f"{flag} must be an integer >= {low}, got {value!r}")

    @staticmethod
    def _check_positive(flag: str, value: Any, what: str = "") -> None:
        import math

        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise NosError(f"{flag}{what} must be a finite number > 0, got {value!r}")

    def _check_task(self) -> None:
        """Refuse an unknown task name or a malformed option; record where a task of the user's own
        is imported from."""
        from nos_symbolic.tasks import TASK_NAMES, is_custom
        from nos_symbolic.tasks.custom import module_dir, split_spec

        if not isinstance(self.task, str) or not (self.task in TASK_NAMES or is_custom(self.task)):
            raise NosError(f"unknown task {self.task!r} (--task); expected one of {', '.join(TASK_NAMES)}, "
                           f"or module:function for a task of your own")
        options = dict(self.task_options) if isinstance(self.task_options, dict) else self.task_options
        try:
            pairs = tuple(sorted((str(k), _hashable(v)) for k, v in dict(options).items()))
        except (TypeError, ValueError):
            raise NosError(f"task options (--task-option) must be name=value pairs, got {self.task_options!r}") from None
        object.__setattr__(self, "task_options", pairs)
        if not is_custom(self.task):
            if self.task_path is not None:
                raise NosError(f"task_path applies to a task of your own (module:function), not {self.task}")
            reserved = {"epochs", "data_dir", "subset"} & {k for k, _ in pairs}
            if reserved:
                raise NosError(f"--task-option {', '.join(sorted(reserved))}: pass it as its own option "
                               f"(--{sorted(reserved)[0].replace('_', '-')})")
            return
        split_spec(self.task)
        for name, flag in (("data_dir", "--data-dir"), ("subset", "--subset")):
            if getattr(self, name) is not None:
                raise NosError(f"{flag} applies to the built-in tasks; pass a task of your own its options "
                               f"with --task-option key=value")
        if self.task_path is None:
            object.__setattr__(self, "task_path", module_dir(self.task))
        if self.epochs is None:  # the Task's own length, else the protocol's
            from nos_symbolic.tasks.protocol import PROTOCOL_EPOCHS

            object.__setattr__(self, "epochs", task_for(self).epochs or PROTOCOL_EPOCHS[self.protocol])

    def _loader_parameters(self) -> dict[str, Any]:
        """The data options the task's loader takes (name -> inspect.Parameter); none for a task of
        the user's own, which takes task_options."""
        from nos_symbolic.tasks import data_options, is_custom

        return {} if is_custom(self.task) else data_options(self.task)

    def check_data(self) -> None:
        """Refuse a --data-dir that is not a folder on this machine, and build a task of the user's own
        and try it (tasks/custom.py check_task), before a run writes anything."""
        from pathlib import Path

        from nos_symbolic.tasks import is_custom

        if is_custom(self.task):
            from nos_symbolic.tasks.custom import check_task

            check_task(task_for(self), self.task)
        if self.data_dir is not None and not Path(self.data_dir).expanduser().is_dir():
            why = "does not exist" if not Path(self.data_dir).expanduser().exists() else "is not a folder"
            raise NosError(f"--data-dir {self.data_dir} {why}")

    def check_device(self) -> None:
        """Refuse a CUDA device this machine does not have."""
        if self.device == "cpu":
            return
        import torch

        index = self.device.partition(":")[2]
        if not torch.cuda.is_available():
            raise NosError(f"device {self.device} asked for (--device, --gpus-per-eval), but CUDA is not "
                           f"available here; use the cpu")
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise NosError(f"device {self.device}: this machine has {torch.cuda.device_count()} CUDA device(s)")

    def get_task_options(self) -> dict[str, Any]:
        """The options `get_task` builds this config's task with."""
        from nos_symbolic.tasks import is_custom

        if is_custom(self.task):
            return dict(self.task_options)
        options: dict[str, Any] = {"epochs": self.epochs, **dict(self.task_options)}
        params = self._loader_parameters()
        options.update({name: getattr(self, name) for name in ("data_dir", "subset") if name in params})
        return options

    def metric_name(self) -> str:
        """What this config's score measures ("accuracy", "negative MSE", ...): a built-in task's from
        its table, a task of the user's own from its Task (built here, once per process)."""
        from nos_symbolic.tasks import is_custom, metric_of

        return task_for(self).metric_name if is_custom(self.task) else metric_of(self.task)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lrs"] = list(self.lrs)
        d["halving"] = None if self.halving is None else dict(self.halving)
        d["task_options"] = dict(self.task_options)
        return d

    def halving_knobs(self) -> "Halving | None":
        """The halving protocol's knobs (tasks/protocol.py Halving); None with full."""
        from nos_symbolic.tasks.protocol import Halving

        return None if self.halving is None else Halving(**dict(self.halving))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvalConfig":
        check_known_keys(cls, d, "evaluation")
        from nos_symbolic.tasks.protocol import LEGACY_HALVING

        d = dict(d)
        d.setdefault("protocol", "full")  # a config written before protocols were named
        d.setdefault("hurdle_quantile", None)  # ... or before hurdles: none
        d.setdefault("epochs", 5)
        if d["protocol"] == "halving" and "halving" not in d:  # before the knobs were recorded
            d["halving"] = halving_pairs(LEGACY_HALVING)
        if isinstance(d.get("halving"), dict):
            d["halving"] = tuple(sorted(d["halving"].items()))
        if "lrs" in d:
            d["lrs"] = tuple(float(x) for x in d["lrs"])
        return cls(**d)


def _hashable(value: Any) -> Any:
    """An option's value as a hashable one (a JSON list back as a tuple), so configs cache tasks."""
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        raise TypeError("a task option cannot be a mapping")
    hash(value)
    return value


@lru_cache(maxsize=4)
def load_task(name: str, options: tuple[tuple[str, Any], ...], path: str | None = None):
    """The task's data and model, built once per process and configuration; a task of the user's
    own is imported with path on sys.path."""
    from nos_symbolic.tasks import get_task, is_custom

    if is_custom(name):
        from nos_symbolic.tasks.custom import build_custom_task

        return build_custom_task(name, dict(options), path)
    return get_task(name, **dict(options))


def task_for(config: EvalConfig):
    """The task an EvalConfig names (cached)."""
    return load_task(config.task, tuple(sorted(config.get_task_options().items())), config.task_path)


def rule_factory(rule, seed: int):
    """(params, lr, total_steps) -> SymbolicOptimizer running `rule`."""
    from nos_symbolic.optim import SymbolicOptimizer

    def make(params, lr: float, total_steps: int):
        return SymbolicOptimizer(params, rule=rule, lr=lr, total_steps=total_steps, seed=seed)

    return make


def evaluate(spec: str, config: EvalConfig, curve: bool = False,
             hurdle_curves: Sequence[Sequence[tuple[int, float]]] = ()) -> EvalResult:
    """Score a rule (DSL text or a rule name) or a torch baseline (sgd, momentum, adam, rmsprop).

    curve=True also records the final run's per-epoch validation accuracy (EvalResult.val_curve).
    Raises NosError only for the user's mistakes (bad rule text, missing data); anything that goes
    wrong inside training is an `error` result.
    """
    from nos_symbolic.prescreen import prescreen
    from nos_symbolic.rule import parse_rule
    from nos_symbolic.tasks.baselines import BASELINES

    task = task_for(config)
    if spec in BASELINE_NAMES:
        factory = BASELINES[spec]
    else:
        rule = parse_rule(spec)
        screen = prescreen(rule, config.descent_threshold)
        if not screen.passed:
            return EvalResult(status="rejected", seed=config.seed, reason=screen.reason)
        factory = rule_factory(rule, config.seed)
    return run_protocol(task, factory, config, curve, hurdle_curves)


def run_protocol(task, factory, config: EvalConfig, curve: bool = False,
                 hurdle_curves: Sequence[Sequence[tuple[int, float]]] = ()) -> EvalResult:
    """config's protocol (the lr search and the final run), with failures turned into `error`
    results. hurdle_curves: the validation curves of the search's recent rules; the halving
    protocol's hurdle is config.hurdle_quantile of their accuracies at the hurdle step (no hurdle
    while too few reached it)."""
    from nos_symbolic.tasks.protocol import DEFAULT_HALVING, hurdle_threshold, run_named_protocol

    knobs = config.halving_knobs() or DEFAULT_HALVING
    hurdle = None
    if config.hurdle_quantile is not None and hurdle_curves:
        hurdle = hurdle_threshold(hurdle_curves, knobs.hurdle_epoch * task.steps_per_epoch,
                                  config.hurdle_quantile)

    import torch

    start = time.perf_counter()
    threads = torch.get_num_threads()
    # One thread, as in a worker process: float reductions then add up in the same order, so a rule
    # scores the same in this process and on any worker. (Child networks this small gain little from
    # more threads; parallelism comes from running evaluations side by side.)
    torch.set_num_threads(1)
    # Wild rules drive weights into subnormal floats, which x86 processes up to 100x slower; flushing
    # them to zero keeps such an evaluation from running into the timeout.
    flush = torch.set_flush_denormal(True)
    try:
        result = run_named_protocol(config.protocol, task, factory, lrs=config.lrs, epochs=config.epochs,
                                    grid_epochs=config.grid_epochs, seed=config.seed, device=config.device,
                                    curve=curve, hurdle_threshold=hurdle if config.protocol != "full" else None,
                                    halving_knobs=knobs)
        return replace(result, reward=reward_of(task, result.val_acc, config.seed, config.device))
    except Exception as err:  # a wild rule or a bug in one evaluation must not end a search
        return EvalResult(status="error", seed=config.seed, seconds=time.perf_counter() - start,
                          reason=f"{type(err).__name__}: {err}"[:500])
    finally:
        torch.set_num_threads(threads)
        if flush:
            torch.set_flush_denormal(False)


def reward_of(task, val: float | None, seed: int = 0, device: str = "cpu") -> float:
    """The search's reward for a validation score val: max(0, val - floor), with floor 0 for a task
    scored by accuracy (the reward is the accuracy) and, for any other metric, the score of the
    untrained network from seed (so a rule that does no better than not training earns 0, as a
    rejected or crashed one does, whatever the metric's sign or scale). 0 when val is None."""
    from nos_symbolic.tasks import accuracy
    from nos_symbolic.tasks.train import untrained_score

    if val is None:
        return 0.0
    floor = 0.0 if task.metric is accuracy else untrained_score(task, seed, device)
    return max(0.0, val - floor)


def evaluate_job(payload: dict[str, Any]) -> EvalResult:
    """Worker entry point: payload = {"rule": text, "config": EvalConfig.to_dict()}, and optionally
    "curve": True for the per-epoch validation curve and "hurdle_curves": recent rules' validation
    curves, [[step, accuracy], ...] each (the halving protocol's hurdle)."""
    curves = [tuple((int(step), float(acc)) for step, acc in c) for c in payload.get("hurdle_curves", ())]
    return evaluate(payload["rule"], EvalConfig.from_dict(payload["config"]), bool(payload.get("curve")),
                    curves)


def warm_worker(config: dict[str, Any]) -> None:
    """Worker initializer: build the task's data once per process."""
    task_for(EvalConfig.from_dict(config))
