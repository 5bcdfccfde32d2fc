"""Work functions for the Ray executor tests that lose their worker on purpose, once or every time.

"Once" is decided by a marker file that exactly one process manages to create, so a retry on a fresh
worker (another process) sees the marker and finishes normally.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from _jobs import boom, exit_hard, hang, not_a_result, ok  # noqa: F401  (named by `dispatch`)
from nos_symbolic.result import EvalResult

# Where `evaluate_or_die_once` leaves its marker; set in the environment Ray's processes start with.
DIE_MARKER_ENV = "NOS_TEST_RAY_DIE_MARKER"


def _first(marker: str) -> bool:
    """True for the one caller, in any process, that creates `marker`."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def die_once(payload: dict) -> EvalResult:
    """The first run kills its worker process; the retry succeeds."""
    if _first(payload["marker"]):
        os._exit(1)
    return EvalResult(status="ok", reward=float(payload["reward"]), reason=str(os.getpid()))


def sleep_once(payload: dict) -> EvalResult:
    """The first run publishes its process id in payload["pid_file"] and sleeps until killed."""
    pid_file = Path(payload["pid_file"])
    if _first(f"{pid_file}.claimed"):
        tmp = pid_file.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(pid_file)  # the test never reads half a number
        time.sleep(120)
    return EvalResult(status="ok", reward=1.0, reason=str(os.getpid()))


def dispatch(payload: dict) -> EvalResult:
    """One work function for a mixed batch: the payload names the behaviour."""
    return globals()[payload["do"]](payload)


def evaluate_or_die_once(payload: dict) -> EvalResult:
    """`evaluate_job`, except that the first evaluation of the test session loses its worker part-way."""
    from nos_symbolic.evaluate import evaluate_job

    marker = os.environ.get(DIE_MARKER_ENV)
    if marker and _first(marker):
        time.sleep(0.2)
        os._exit(1)
    return evaluate_job(payload)
