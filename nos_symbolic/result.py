"""The outcome of scoring one rule on a child task.

An `EvalResult` is plain data: the evaluator produces it, the run store persists it, the search turns
its `reward` into a learning signal and analysis reads it back. It never holds tensors.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "rejected", "diverged", "failed", "hurdled", "error"]
STATUSES: tuple[str, ...] = ("ok", "rejected", "diverged", "failed", "hurdled", "error")


@dataclass(frozen=True)
class EvalResult:
    """One rule scored on one task.

    status:   ok (trained to the end), rejected (pre-screen, no training), diverged (NaN/Inf or
              exploding loss), failed (still at chance after the first epoch), hurdled (stopped
              below the hurdle part-way through the final run), error (the evaluation itself raised,
              hung or lost its worker).
    reward:   the search's signal: validation accuracy in [0, 1] (for a task scored by another
              metric, max(0, metric - the untrained network's): evaluate.reward_of); 0.0 for every status but ok,
              diverged, failed and hurdled (which keep the accuracy they reached; a hurdled run's
              is its accuracy at the hurdle).
    reason:   a short human-readable explanation for every status but ok.
    val_acc, test_acc: the task's metric (accuracy unless the task names another) on validation / test.
    val_loss, test_loss: the task's loss (mean cross-entropy in nats by default) on validation / test at the end of
              the final run, when measured and finite.
    val_curve: (step, validation accuracy) after each epoch of the final run, when asked for (the
              studies' steps-to-target); empty otherwise.
    """

    status: Status
    reward: float = 0.0
    lr: float | None = None
    val_acc: float | None = None
    test_acc: float | None = None
    loss_curve: tuple[float, ...] = field(default_factory=tuple)
    steps: int = 0
    seconds: float = 0.0
    seed: int = 0
    reason: str = ""
    val_loss: float | None = None
    test_loss: float | None = None
    val_curve: tuple[tuple[int, float], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; expected one of {STATUSES}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loss_curve"] = list(self.loss_curve)
        d["val_curve"] = [list(point) for point in self.val_curve]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvalResult":
        d = dict(d)
        d["loss_curve"] = tuple(d.get("loss_curve") or ())
        d["val_curve"] = tuple((int(step), float(acc)) for step, acc in d.get("val_curve") or ())
        return cls(**d)
