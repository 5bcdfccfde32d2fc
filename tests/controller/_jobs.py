"""Work functions for the executor tests; module-level so worker processes can import them by name."""
from __future__ import annotations

import os
import time
from pathlib import Path

from nos_symbolic.result import EvalResult

_initialised: list[str] = []  # how often this process ran `initialise`, and with what


def ok(payload: dict) -> EvalResult:
    return EvalResult(status="ok", reward=float(payload["reward"]), seed=payload.get("seed", 0))


def sleep(payload: dict) -> EvalResult:
    time.sleep(payload["seconds"])
    return EvalResult(status="ok", reward=1.0, reason=str(os.getpid()))


def boom(payload: dict) -> EvalResult:
    raise ValueError(f"boom {payload['n']}")


def exit_hard(payload: dict) -> EvalResult:
    os._exit(3)


def hang(payload: dict) -> EvalResult:
    if "pid_file" in payload:  # lets a test find and kill this worker from outside
        Path(payload["pid_file"]).write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)


def not_a_result(payload: dict) -> int:
    return 42


def dispatch(payload: dict) -> EvalResult:
    """One work function for a mixed batch: the payload names the behaviour."""
    return globals()[payload["do"]](payload)


def initialise(tag: str) -> None:
    _initialised.append(tag)


def report_init(payload: dict) -> EvalResult:
    """Which process ran this, what its initializer saw and its thread settings, in `reason`."""
    import torch

    threads = f"{torch.get_num_threads()}|{os.environ.get('OMP_NUM_THREADS')}"
    return EvalResult(status="ok", reason=f"{os.getpid()}|{','.join(_initialised)}|{threads}")


def fail_init(tag: str) -> None:
    raise RuntimeError(f"cannot build task {tag}")


def fake_evaluate(payload: dict) -> EvalResult:
    """A stand-in for nos_symbolic.evaluate.evaluate_job: a reward from the rule's text, in a few ms,
    so search tests exercise the loop, the store and resuming rather than training."""
    import hashlib

    time.sleep(float(os.environ.get("NOS_TEST_EVAL_SECONDS", "0")))
    digest = hashlib.sha256(payload["rule"].encode()).digest()
    return EvalResult(status="ok", reward=int.from_bytes(digest[:2], "big") / 65536, lr=0.1, seed=0)


def no_warm_up(config: dict) -> None:
    """A stand-in for nos_symbolic.evaluate.warm_worker: fake_evaluate needs no data."""


def patch_evaluation() -> None:
    """Make searches in this process (and their worker processes) use fake_evaluate."""
    import nos_symbolic.evaluate as evaluate

    evaluate.evaluate_job = fake_evaluate
    evaluate.warm_worker = no_warm_up
