"""Executors: where the search's evaluations run.

The search loop talks to an `Executor` only: it submits (job_id, payload) pairs, polls for
`Completion`s and keeps `capacity` jobs in flight. A distributed engine (Ray, a cluster queue) plugs
in by implementing the same five members; the loop does not change. `PoolExecutor` is the shared body
of the two pools, worker processes (`ProcessExecutor`, controller/process_executor.py) and Ray actors
(`RayExecutor`, controller/ray_executor.py): the queue, the submit/poll protocol, deadlines and
start-up failures; each says how it runs a job on a worker. `SerialExecutor` runs jobs in-process.

The work is a module-level function `fn(payload) -> EvalResult`, given as the function itself or as a
"module:qualname" string; payloads are plain data. Both travel to worker processes by name and by
pickle, which is why closures and lambdas are refused up front. A job never raises into the loop:
an exception, a timeout or a dead worker comes back as `EvalResult(status="error", reason=...)`.

    with make_executor("nos_symbolic.evaluate:evaluate_job", workers=4, timeout=600) as ex:
        ex.submit(0, payload)
        for c in ex.poll(timeout=1.0):
            ...
"""
from __future__ import annotations

import importlib
import math
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Union, runtime_checkable

from nos_symbolic.result import EvalResult

WorkFn = Union[Callable[[Any], EvalResult], str]
# Libraries that size their thread pools from the environment when first loaded.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
# A worker that dies this many times in a row before finishing its initializer means the setup is
# broken (bad import, crashing initializer); replacing it forever would hide that.
_MAX_START_FAILURES = 3


class ExecutorError(RuntimeError):
    """The executor itself cannot run jobs (e.g. its initializer fails); not a job's failure."""


@dataclass(frozen=True)
class Completion:
    """A finished job.

    worker_seconds: time the job held its worker (inside `fn`, or until it was killed or died), so
                    the search can report the share of wall time spent evaluating.
    detail:         the formatted traceback for a job that raised, for logs; empty otherwise.
    """

    job_id: int
    result: EvalResult
    worker_seconds: float = 0.0
    detail: str = ""


@runtime_checkable
class Executor(Protocol):
    """What the search loop needs from an execution engine."""

    capacity: int  # evaluations that can run at once; the loop keeps this many in flight

    def submit(self, job_id: int, payload: Any) -> None:
        """Queue a job; never blocks on the evaluation itself."""

    def poll(self, timeout: float) -> list[Completion]:
        """Jobs finished since the last poll, waiting up to `timeout` s for at least one."""

    def in_flight(self) -> int:
        """Jobs submitted and not yet returned by `poll`."""

    def close(self) -> None:
        """Stop all work; jobs still in flight are dropped."""

    def __enter__(self) -> Executor: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def make_executor(
    fn: WorkFn,
    workers: int,
    timeout: float | None = None,
    initializer: WorkFn | None = None,
    initargs: tuple[Any, ...] = (),
) -> Executor:
    """`workers=0` runs in-process (debugging, no timeout); `workers>=1` uses worker processes."""
    if workers == 0:
        return SerialExecutor(fn, initializer=initializer, initargs=initargs)
    from controller.process_executor import ProcessExecutor  # it builds on this module

    return ProcessExecutor(fn, workers, timeout, initializer=initializer, initargs=initargs)


def __getattr__(name: str) -> Any:
    """`ProcessExecutor`, still importable from here; it lives in controller/process_executor.py,
    which imports this module, so it is loaded on first use rather than at import."""
    if name == "ProcessExecutor":
        from controller.process_executor import ProcessExecutor

        return ProcessExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------------
# Work functions by name.


def callable_ref(fn: WorkFn) -> str:
    """"module:qualname" for a module-level function; TypeError for a lambda, closure or method."""
    if isinstance(fn, str):
        resolve_callable(fn)
        return fn
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise TypeError(
            f"{fn!r} is not a module-level function; worker processes import the work function by "
            f"name, so define it at the top level of a module"
        )
    ref = f"{module}:{qualname}"
    if resolve_callable(ref) is not fn:
        raise TypeError(f"{ref} does not name {fn!r}; define it at the top level of a module")
    return ref


def resolve_callable(ref: str) -> Callable[..., Any]:
    """Import the function named by "module:qualname"."""
    module, sep, qualname = ref.partition(":")
    if not sep or not module or not qualname:
        raise ValueError(f"{ref!r} is not a 'module:qualname' reference")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{ref} is not callable")
    return obj


def error_result(reason: str) -> EvalResult:
    """A job's failure as the result the search records."""
    return EvalResult(status="error", reason=reason)


def run_job(fn: Callable[[Any], EvalResult], payload: Any) -> tuple[EvalResult, str, float]:
    """Run one job, turning any exception or wrong return type into an error result."""
    start = time.perf_counter()
    detail = ""
    try:
        result = fn(payload)
        if not isinstance(result, EvalResult):
            result = error_result(f"work function returned {type(result).__name__}, expected EvalResult")
    except Exception as e:  # a job's failure is data for the search, not a crash of the search
        result = error_result(f"{type(e).__name__}: {e}")
        detail = traceback.format_exc()
    return result, detail, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------
# In-process.


class SerialExecutor:
    """Runs each job in the calling process during `poll`; for tests and `--workers 0` debugging.

    It cannot enforce a timeout or survive a job that kills the process.
    """

    capacity = 1

    def __init__(
        self, fn: WorkFn, initializer: WorkFn | None = None, initargs: tuple[Any, ...] = ()
    ) -> None:
        self._fn = resolve_callable(fn) if isinstance(fn, str) else fn
        self._pending: deque[tuple[int, Any]] = deque()
        if initializer is not None:
            init = resolve_callable(initializer) if isinstance(initializer, str) else initializer
            init(*initargs)

    def submit(self, job_id: int, payload: Any) -> None:
        self._pending.append((job_id, payload))

    def poll(self, timeout: float) -> list[Completion]:
        """Run every queued job now; `timeout` is ignored since a running job cannot be interrupted."""
        done = []
        while self._pending:
            job_id, payload = self._pending.popleft()
            result, detail, seconds = run_job(self._fn, payload)
            done.append(Completion(job_id, result, seconds, detail))
        return done

    def in_flight(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        self._pending.clear()

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------
# Shared by the pools: a worker's thread limit and the pool body.


def limit_torch_threads(torch: Any, threads: int) -> None:
    """Size torch's intra- and inter-op thread pools to `threads` in a worker that has loaded torch."""
    # torch may have been imported before the environment was set (unpickling this process's target
    # imports its module), so size its pools explicitly.
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # only allowed before the first inter-op parallel work
        pass


class PoolExecutor(ABC):
    """A pool of `workers` workers, one job per worker at a time: the part of the `Executor` protocol
    every pool shares. A subclass starts its workers, hands a queued job to a free worker
    (`_dispatch`), waits for messages and deaths (`_collect`), and stops its workers (`_stop`).

    The timeout clock of a job starts when a set-up worker receives it, so start-up and the
    initializer (run once per worker) are not charged to any job.
    """

    def __init__(self, fn: WorkFn, workers: int, timeout: float | None, initializer: WorkFn | None) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a finite number > 0 or None, got {timeout}")
        self.capacity = workers
        self.timeout = timeout
        self._fn_ref = callable_ref(fn)
        self._init_ref = None if initializer is None else callable_ref(initializer)
        self._pending: deque[Any] = deque()  # jobs not yet handed to a worker
        self._job_ids: set[int] = set()
        self._done: list[Completion] = []  # finished, not yet returned by poll
        self._start_failures = 0  # workers in a row that died before they were set up
        self._closed = False

    # -- the Executor interface ----------------------------------------------------------------------

    def submit(self, job_id: int, payload: Any) -> None:
        """Queue a job; it starts as soon as a worker is free."""
        if self._closed:
            raise ExecutorError("executor is closed")
        if job_id in self._job_ids:
            raise ValueError(f"job {job_id} is already in flight")
        job = self._make_job(job_id, payload)
        self._job_ids.add(job_id)
        self._pending.append(job)
        self._dispatch()

    def poll(self, timeout: float) -> list[Completion]:
        """Jobs finished since the last poll, waiting up to `timeout` s for at least one.

        Raises ExecutorError only if workers cannot be set up at all.
        """
        end = time.monotonic() + max(timeout, 0.0)
        while True:
            self._dispatch()
            if not self._done:
                self._collect(max(end - time.monotonic(), 0.0))
            if self._done:
                self._collect(0.0)  # pick up anything else already finished
                self._dispatch()  # refill freed workers before the caller handles results
                done, self._done = self._done, []
                return done
            if not self._job_ids or time.monotonic() >= end:
                return []

    def in_flight(self) -> int:
        return len(self._job_ids) + len(self._done)

    def close(self) -> None:
        """Stop the workers (killing any mid-job) and drop jobs in flight. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop()
        self._pending.clear()
        self._job_ids.clear()
        self._done.clear()

    def __enter__(self) -> PoolExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until every worker has run its initializer; False if `timeout` s pass first.

        Lets a caller start its clock after start-up, not before. Raises ExecutorError if the
        initializer fails.
        """
        end = None if timeout is None else time.monotonic() + timeout
        while not self._all_ready():
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._collect(left, only_starting=True)
        return True

    # -- what a pool provides ------------------------------------------------------------------------

    @abstractmethod
    def _make_job(self, job_id: int, payload: Any) -> Any:
        """The queued form of a job (TypeError for a payload the pool cannot carry)."""

    @abstractmethod
    def _dispatch(self) -> None:
        """Hand queued jobs to free, set-up workers."""

    @abstractmethod
    def _collect(self, wait: float | None, only_starting: bool = False) -> None:
        """Wait up to `wait` s for workers' results, set-ups or deaths; handle them; enforce deadlines."""

    @abstractmethod
    def _all_ready(self) -> bool:
        """Whether every worker has run its initializer."""

    @abstractmethod
    def _running_since(self) -> list[float]:
        """time.monotonic() at which each running job was handed to its worker."""

    @abstractmethod
    def _stop(self) -> None:
        """Stop every worker."""

    # -- shared machinery ----------------------------------------------------------------------------

    def _until_next_deadline(self, wait: float | None) -> float | None:
        started = self._running_since()
        if self.timeout is None or not started:
            return wait
        left = max(min(started) + self.timeout - time.monotonic(), 0.0)
        return left if wait is None else min(wait, left)

    def _start_failed(self, what: str) -> None:
        """Count a worker that died before it was set up; ExecutorError after too many in a row."""
        self._start_failures += 1
        if self._start_failures >= _MAX_START_FAILURES:
            raise ExecutorError(f"{self._start_failures} {what}")

    def _finish(self, completion: Completion) -> None:
        self._job_ids.discard(completion.job_id)
        self._done.append(completion)
