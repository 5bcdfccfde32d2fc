"""`EvalConfig`: how a rule is scored (the task, the protocol, the lr grid, the length), and its checks.

    config = EvalConfig(task="mnist1d", epochs=30, protocol="full")
    EvalConfig(epochs=0)        # SettingError: epochs must be an integer >= 1, got 0
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from nos_symbolic.errors import SettingError, check_known_keys
from nos_symbolic.prescreen import DESCENT_THRESHOLD
from nos_symbolic.settings import check_fraction, check_int, check_number, setting
from nos_symbolic.tasks.train import DEFAULT_GRID_EPOCHS, DEFAULT_LRS

if TYPE_CHECKING:
    from nos_symbolic.tasks.protocol import Halving

BASELINE_NAMES: tuple[str, ...] = ("sgd", "momentum", "adam", "rmsprop", "adam-cosine")
DEFAULT_PROTOCOL = "halving"  # bench/bench_protocol.py: 2x the evaluations per minute of full, less noise
AUTO = "auto"  # hurdle_quantile: the protocol's default
TASK_HELP = ("child task: mnist1d, mnist1d-mlp, mnist1d-shuffled, cifar10, charlm, or module:function "
             "(a function in module.py, in the current directory or on PYTHONPATH, returning a "
             "nos_symbolic.Task)")


def hurdle_quantile_value(text: str) -> float | str | None:
    """A hurdle quantile written as text: auto (the protocol's default), none, or a number from 0 to 1."""
    word = str(text).strip().lower()
    if word == AUTO:
        return AUTO
    if word in ("none", "off"):
        return None
    try:
        return float(word)
    except ValueError:
        raise SettingError(f"{{0}} must be a number from 0 to 1, auto or none, got {text!r}",
                           "hurdle_quantile") from None


def task_options_value(items: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """Task options written as key=value words, as sorted pairs; a value is read as a Python literal
    when it is one (600, 0.1, True, [1, 2]) and kept as text otherwise (kind=moons)."""
    import ast

    options: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SettingError(f"{{0}} {item!r} is not key=value (e.g. {{0}} n=600)", "task_options")
        if key in options:
            raise SettingError(f"{{0}} {key} is given twice", "task_options")
        try:
            options[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            options[key] = text
    return tuple(sorted(options.items()))


def halving_pairs(knobs: "Halving") -> tuple[tuple[str, Any], ...]:
    """A Halving's knobs as sorted (name, value) pairs: hashable, and a JSON object in config.json."""
    return tuple(sorted(asdict(knobs).items()))


@dataclass(frozen=True)
class EvalConfig:
    """How a rule is scored. Every field is plain data so it travels to worker processes; each is a
    setting (nos_symbolic/settings.py) whose help says what it means."""

    task: str = setting("mnist1d", help=TASK_HELP)
    data_dir: str | None = setting(None, help="the task's data folder (CIFAR-10: cifar-10-batches-py/ or "
                                              "train/<class>/ and test/<class>/; charlm: a folder of .py files)")
    subset: int | None = setting(None, help="CIFAR-10: training images to use (class-balanced; default all)")
    epochs: int | None = setting(None, help="epochs of each final run (default: 3 with halving, 5 with full; "
                                            "a task of your own: its Task's epochs when it sets them)")
    lrs: tuple[float, ...] = setting(DEFAULT_LRS, nargs="+", help="learning-rate grid (one lr: no grid)")
    grid_epochs: float = setting(DEFAULT_GRID_EPOCHS, help="full: epochs of each grid run")
    seed: int = setting(0, help="seed of every evaluation: model initialisation, data order and the "
                                "optimizer's random draws")
    device: str = setting("cpu", help="cpu, cuda or cuda:N")
    descent_threshold: float = setting(DESCENT_THRESHOLD, option=False, help="the pre-screen's minimum mean cos(update, g)")
    protocol: str = setting(DEFAULT_PROTOCOL, help="how a rule is scored: halving (successive halving of the "
                            "lr grid on the final run itself, and a hurdle; tasks/protocol.py) or full (the "
                            "paper's lr grid, then the final run)")
    hurdle_quantile: float | str | None = setting(
        AUTO, from_text=hurdle_quantile_value, help="halving: a final run below this quantile of recent rules "
        "after the hurdle epoch stops as hurdled (auto: 0.25 with halving; none: no hurdle)")
    halving: tuple[tuple[str, Any], ...] | None = setting(
        None, option=False, help="the halving protocol's knobs (tasks/protocol.py Halving) as sorted (name, "
        "value) pairs, recorded so a run resumes with the protocol it began with (None: the defaults)")
    task_options: tuple[tuple[str, Any], ...] = setting(
        (), flag="--task-option", append=True, from_text=task_options_value,
        help="key=value, repeatable: a keyword argument of the task's function (or a built-in task's data option)")
    task_path: str | None = setting(None, option=False, help="for module:function, the directory the module "
                                    "is imported from (found when the config is made, then recorded)")

    def __post_init__(self) -> None:
        """Fill in the protocol's defaults (epochs, hurdle, knobs), then refuse a value no evaluation
        could use; the data and the device are checked by `check_data` and `check_device`, on the
        machine that will use them."""
        from nos_symbolic.tasks.protocol import PROTOCOL_NAMES

        if self.protocol not in PROTOCOL_NAMES:
            raise SettingError(f"unknown protocol {self.protocol!r} ({{0}}); expected one of "
                               f"{', '.join(PROTOCOL_NAMES)}", "protocol")
        self._fill_protocol_defaults()
        self._check_task()
        check_int("epochs", self.epochs, 1)
        check_int("seed", self.seed, 0, subject="the evaluation seed ({0})")
        if self.subset is not None:
            check_int("subset", self.subset, 1)
        if not isinstance(self.lrs, tuple) or not self.lrs:
            raise SettingError(f"{{0}} needs at least one learning rate, got {self.lrs!r}", "lrs")
        for lr in self.lrs:
            check_number("lrs", lr, strict=True, subject="{0}: every learning rate")
        check_number("grid_epochs", self.grid_epochs, strict=True)
        if self.hurdle_quantile is not None:
            check_fraction("hurdle_quantile", self.hurdle_quantile)
            if self.protocol == "full":
                raise SettingError("{0} applies to {1} halving; the full protocol has no hurdle", "hurdle_quantile",
                                   "protocol")
        check_number("descent_threshold", self.descent_threshold, -1)
        if self.descent_threshold > 1:
            raise SettingError(f"{{0}} must be a cosine from -1 to 1, got {self.descent_threshold!r}",
                               "descent_threshold")
        if not isinstance(self.device, str) or not (self.device == "cpu" or self.device.startswith("cuda")):
            raise SettingError(f"{{0}} must be cpu, cuda or cuda:N, got {self.device!r}", "device")
        self._check_data_options()

    def _fill_protocol_defaults(self) -> None:
        """epochs, hurdle_quantile and halving left unset take the protocol's values."""
        from nos_symbolic.tasks import is_custom
        from nos_symbolic.tasks.protocol import DEFAULT_HALVING, PROTOCOL_EPOCHS, PROTOCOL_HURDLES, Halving

        if self.epochs is None and not is_custom(self.task):
            object.__setattr__(self, "epochs", PROTOCOL_EPOCHS[self.protocol])
        if isinstance(self.hurdle_quantile, str) and self.hurdle_quantile == AUTO:
            object.__setattr__(self, "hurdle_quantile", PROTOCOL_HURDLES[self.protocol])
        if self.protocol == "halving":
            knobs = DEFAULT_HALVING if self.halving is None else self.halving
            try:
                knobs = knobs if isinstance(knobs, Halving) else Halving(**dict(knobs))
            except (TypeError, ValueError) as err:
                raise SettingError(f"the halving protocol's knobs are not valid ({{0}}): {err}", "halving") from None
            object.__setattr__(self, "halving", halving_pairs(knobs))
        elif self.halving is not None:
            raise SettingError("halving knobs apply to {0} halving only", "protocol")

    def _check_data_options(self) -> None:
        """data_dir and subset only where the task's loader takes them; data_dir where it needs one."""
        from nos_symbolic.tasks import TASK_NAMES, data_options

        params = self._loader_parameters()
        for name in ("data_dir", "subset"):
            if getattr(self, name) is not None and name not in params:
                takers = [t for t in TASK_NAMES if name in data_options(t)]
                raise SettingError(f"{{0}} does not apply to the {self.task} task (only to {', '.join(takers)})", name)
        required = params.get("data_dir")
        if self.data_dir is None and required is not None and required.default is required.empty:
            raise SettingError(f"the {self.task} task needs data_dir ({{0}}): the folder holding its data", "data_dir")
        if self.data_dir is not None and (not isinstance(self.data_dir, str) or not self.data_dir.strip()):
            raise SettingError(f"{{0}} must be a folder, got {self.data_dir!r}", "data_dir")

    def _check_task(self) -> None:
        """Refuse an unknown task name or a malformed option; record where a task of the user's own
        is imported from."""
        from nos_symbolic.tasks import TASK_NAMES, is_custom
        from nos_symbolic.tasks.custom import module_dir, split_spec

        if not isinstance(self.task, str) or not (self.task in TASK_NAMES or is_custom(self.task)):
            raise SettingError(f"unknown task {self.task!r} ({{0}}); expected one of {', '.join(TASK_NAMES)}, "
                               f"or module:function for a task of your own", "task")
        options = dict(self.task_options) if isinstance(self.task_options, dict) else self.task_options
        try:
            pairs = tuple(sorted((str(k), _hashable(v)) for k, v in dict(options).items()))
        except (TypeError, ValueError):
            raise SettingError(f"task options ({{0}}) must be name=value pairs, got {self.task_options!r}",
                               "task_options") from None
        object.__setattr__(self, "task_options", pairs)
        if not is_custom(self.task):
            if self.task_path is not None:
                raise SettingError(f"{{0}} applies to a task of your own (module:function), not {self.task}",
                                   "task_path")
            reserved = sorted({"epochs", "data_dir", "subset"} & {k for k, _ in pairs})
            if reserved:
                raise SettingError(f"{{0}} {', '.join(reserved)}: pass it as its own option ({{1}})", "task_options",
                                   reserved[0])
            return
        split_spec(self.task)
        for name in ("data_dir", "subset"):
            if getattr(self, name) is not None:
                raise SettingError("{0} applies to the built-in tasks; pass a task of your own its options "
                                   "with {1} key=value", name, "task_options")
        if self.task_path is None:
            object.__setattr__(self, "task_path", module_dir(self.task))
        if self.epochs is None:  # the Task's own length, else the protocol's
            from nos_symbolic.evaluate import task_for
            from nos_symbolic.tasks.protocol import PROTOCOL_EPOCHS

            object.__setattr__(self, "epochs", task_for(self).epochs or PROTOCOL_EPOCHS[self.protocol])

    def _loader_parameters(self) -> dict[str, Any]:
        """The data options the task's loader takes (name -> inspect.Parameter); none for a task of
        the user's own, which takes task_options."""
        from nos_symbolic.tasks import data_options, is_custom

        return {} if is_custom(self.task) else data_options(self.task)

    def check_data(self) -> None:
        """Refuse a data_dir that is not a folder on this machine, and build a task of the user's own
        and try it (tasks/custom.py check_task), before a run writes anything."""
        from pathlib import Path

        from nos_symbolic.tasks import is_custom

        if is_custom(self.task):
            from nos_symbolic.evaluate import task_for
            from nos_symbolic.tasks.custom import check_task

            check_task(task_for(self), self.task)
        if self.data_dir is not None and not Path(self.data_dir).expanduser().is_dir():
            why = "does not exist" if not Path(self.data_dir).expanduser().exists() else "is not a folder"
            raise SettingError(f"{{0}} {self.data_dir} {why}", "data_dir")

    def check_device(self) -> None:
        """Refuse a CUDA device this machine does not have."""
        if self.device == "cpu":
            return
        import torch

        index = self.device.partition(":")[2]
        if not torch.cuda.is_available():
            raise SettingError(f"device {self.device} asked for ({{0}}), but CUDA is not available here; use the cpu",
                               "device")
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise SettingError(f"{{0}} {self.device}: this machine has {torch.cuda.device_count()} CUDA "
                               f"device(s)", "device")

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
        from nos_symbolic.evaluate import task_for
        from nos_symbolic.tasks import is_custom, metric_of

        return task_for(self).metric_name if is_custom(self.task) else metric_of(self.task)

    def halving_knobs(self) -> "Halving | None":
        """The halving protocol's knobs (tasks/protocol.py Halving); None with full."""
        from nos_symbolic.tasks.protocol import Halving

        return None if self.halving is None else Halving(**dict(self.halving))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lrs"] = list(self.lrs)
        d["halving"] = None if self.halving is None else dict(self.halving)
        d["task_options"] = dict(self.task_options)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvalConfig":
        """The config `to_dict` wrote (config.json, a worker's payload)."""
        check_known_keys(cls, d, "evaluation")
        d = dict(d)
        if isinstance(d.get("halving"), dict):
            d["halving"] = tuple(sorted(d["halving"].items()))
        if isinstance(d.get("lrs"), list):
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
