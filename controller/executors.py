"""Executors: where the search's evaluations run.

The search loop talks to an `Executor` only: it submits (job_id, payload) pairs, polls for
`Completion`s and keeps `capacity` jobs in flight. A distributed engine (Ray, a cluster queue) plugs
in by implementing the same five members; the loop does not change. `PoolExecutor` is the shared body
of the two pools here, worker processes (`ProcessExecutor`) and Ray actors (`RayExecutor`): the queue,
the submit/poll protocol, deadlines and start-up failures; each says how it runs a job on a worker.

The work is a module-level function `fn(payload) -> EvalResult`, given as the function itself or as a
"module:qualname" string; payloads are plain data. Both travel to worker processes by name and by
pickle, which is why closures and lambdas are refused up front. A job never raises into the loop:
an exception, a timeout or a dead worker comes back as `EvalResult(status="error", reason=...)`.

    with ProcessExecutor("nos_symbolic.evaluate:evaluate_job", workers=4, timeout=600) as ex:
        ex.submit(0, payload)
        for c in ex.poll(timeout=1.0):
            ...
"""
from __future__ import annotations

import importlib
import math
import os
import pickle
import signal
import sys
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import connection, get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Protocol, Union, runtime_checkable

from nos_symbolic.result import EvalResult

WorkFn = Union[Callable[[Any], EvalResult], str]
# Libraries that size their thread pools from the environment when first loaded.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
# A worker that dies this many times in a row before finishing its initializer means the setup is
# broken (bad import, crashing initializer); replacing it forever would hide that.
_MAX_START_FAILURES = 3
_JOIN_TIMEOUT_S = 5.0


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
    return ProcessExecutor(fn, workers, timeout, initializer=initializer, initargs=initargs)


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
# Worker processes.
#
# Parent -> worker: (job_id, pickled payload), or None to stop.
# Worker -> parent: ("ready",) | ("init_error", reason, detail) | ("done", job_id, result, detail, s).


def _worker_main(
    conn: Connection, fn_ref: str, init_ref: str | None, initargs: bytes, threads: int
) -> None:
    """A worker's whole life: limit threads, import and initialise once, then run jobs one by one.

    A worker whose parent is gone (killed, even with kill -9) finds its pipe closed and exits at once,
    quietly: there is no one left to tell.
    """
    # Set before the work function's imports load numpy/torch, which read these once at load time.
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    # Ctrl-C in a terminal reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _serve(conn, fn_ref, init_ref, initargs, threads)
    except (BrokenPipeError, ConnectionResetError, EOFError):
        pass
    _exit_now()


def _exit_now() -> None:
    # Exit as a forked multiprocessing child does: flush, then skip interpreter teardown, which with
    # torch loaded takes longer than the whole shutdown should.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed terminal or pipe
            pass
    os._exit(0)


def _serve(conn: Connection, fn_ref: str, init_ref: str | None, initargs: bytes, threads: int) -> None:
    try:
        fn = resolve_callable(fn_ref)
        if init_ref is not None:
            resolve_callable(init_ref)(*pickle.loads(initargs))
        if "torch" in sys.modules:
            limit_torch_threads(sys.modules["torch"], threads)
    except BaseException as e:
        conn.send(("init_error", f"{type(e).__name__}: {e}", traceback.format_exc()))
        return
    conn.send(("ready",))
    while True:
        message = conn.recv()  # EOFError when the parent is gone
        if message is None:
            return
        job_id, blob = message
        try:
            payload = pickle.loads(blob)
        except Exception as e:
            conn.send(("done", job_id, error_result(f"cannot unpickle payload: {type(e).__name__}: {e}"),
                       traceback.format_exc(), 0.0))
            continue
        result, detail, seconds = run_job(fn, payload)
        try:
            conn.send(("done", job_id, result, detail, seconds))  # BrokenPipeError: the parent gave up
        except (pickle.PicklingError, TypeError, AttributeError) as e:  # a field fn filled oddly
            conn.send(("done", job_id, error_result(f"cannot send result: {type(e).__name__}: {e}"),
                       detail, seconds))


def limit_torch_threads(torch: Any, threads: int) -> None:
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


@dataclass
class _Job:
    job_id: int
    blob: bytes
    started: float = 0.0  # time.monotonic() when handed to a worker


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    ready: bool = False
    job: _Job | None = None


class ProcessExecutor(PoolExecutor):
    """Evaluations in `workers` processes, one job per worker at a time.

    One job per worker makes every failure attributable: a job that overruns `timeout` seconds has
    its worker killed and replaced ("timed out after Ns"); a worker that dies (os._exit, segfault,
    SIGKILL) fails only its own job ("worker process died (exit code N)") and is replaced. The
    timeout clock starts when a ready worker receives the job, so start-up and the initializer
    (run once per worker, e.g. to build the task's data) are not charged to any job.

    Workers are started with "spawn": a fresh interpreter inherits none of the parent's threads or
    locks. With fork, a child of a process that has run torch (its OpenMP/intra-op pools, the
    controller's LSTM) can deadlock on a lock held by a thread that does not exist in the child.
    "forkserver" avoids that too, but the server is started once per program with whatever sys.path
    and environment the first caller had; spawn takes the caller's every time. Spawn's cost, a
    fresh import of torch per worker (a second or two), is paid at start and on replacement only.

    Workers are daemonic, so a parent that exits without `close()` does not wait on a hung job;
    the cost is that a work function cannot start multiprocessing children (e.g. DataLoader workers).
    """

    def __init__(
        self,
        fn: WorkFn,
        workers: int,
        timeout: float | None = None,
        initializer: WorkFn | None = None,
        initargs: tuple[Any, ...] = (),
        threads_per_worker: int = 1,
    ) -> None:
        super().__init__(fn, workers, timeout, initializer)
        self._initargs = pickle.dumps(initargs)
        self._threads = threads_per_worker
        self._ctx = get_context("spawn")
        self._workers: list[_Worker] = []
        self._workers = [self._start_worker() for _ in range(workers)]

    def _make_job(self, job_id: int, payload: Any) -> _Job:
        """Payloads travel pickled; TypeError if this one cannot be (payloads must be plain data)."""
        try:
            return _Job(job_id, pickle.dumps(payload))
        except Exception as e:
            raise TypeError(f"payload for job {job_id} cannot be pickled ({e}); "
                            f"payloads must be plain data") from None

    def _stop(self) -> None:
        for w in self._workers:
            if w.ready and w.job is None:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
            else:  # mid-job or still starting: killing loses nothing the caller still wants
                w.process.kill()
        for w in self._workers:
            w.process.join(_JOIN_TIMEOUT_S)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()

    # -- extras --------------------------------------------------------------------------------------

    def worker_pids(self) -> list[int | None]:
        """The current workers' process ids (they change when a worker is replaced)."""
        return [w.process.pid for w in self._workers]

    # -- machinery -----------------------------------------------------------------------------------

    def _start_worker(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker_main,
            args=(child_conn, self._fn_ref, self._init_ref, self._initargs, self._threads),
            daemon=True,
            name="nos-eval-worker",
        )
        process.start()
        child_conn.close()  # only the child holds its end, so its death reads as EOF here
        return _Worker(process, parent_conn)

    def _dispatch(self) -> None:
        for w in self._workers:
            if not self._pending:
                return
            if w.ready and w.job is None:
                job = self._pending.popleft()
                job.started = time.monotonic()
                w.job = job
                try:
                    w.conn.send((job.job_id, job.blob))
                except OSError:
                    pass  # the worker just died; _collect sees its sentinel and fails the job

    def _collect(self, wait: float | None, only_starting: bool = False) -> None:
        """Wait up to `wait` s for worker messages or deaths, then enforce job deadlines."""
        watched = [w for w in self._workers if not only_starting or not w.ready]
        wait = self._until_next_deadline(wait)
        objects: list[Any] = [w.conn for w in watched] + [w.process.sentinel for w in watched]
        ready = set(connection.wait(objects, wait)) if objects else set()
        for i, w in enumerate(self._workers):
            if w.conn in ready or w.process.sentinel in ready:
                self._service(i)
        self._enforce_deadlines()

    def _all_ready(self) -> bool:
        return all(w.ready for w in self._workers)

    def _running_since(self) -> list[float]:
        return [w.job.started for w in self._workers if w.job is not None]

    def _service(self, i: int) -> None:
        """Read every message worker i has sent; if it has died, fail its job and replace it."""
        w = self._workers[i]
        try:
            while w.conn.poll():
                self._handle(w, w.conn.recv())
        except (EOFError, OSError):
            pass  # dead; the sentinel says so below
        if not w.process.is_alive():
            w.process.join()
            self._replace(i, _death_reason(w.process.exitcode))

    def _handle(self, w: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            w.ready = True
            self._start_failures = 0
        elif kind == "init_error":
            raise ExecutorError(f"worker initialisation failed: {message[1]}\n{message[2]}")
        elif kind == "done":
            _, job_id, result, detail, seconds = message
            w.job = None
            self._finish(Completion(job_id, result, seconds, detail))

    def _enforce_deadlines(self) -> None:
        if self.timeout is None:
            return
        for i, w in enumerate(self._workers):
            if w.job is None or time.monotonic() - w.job.started < self.timeout:
                continue
            self._service(i)  # its result may have arrived just now
            if self._workers[i] is w and w.job is not None:
                w.process.kill()
                w.process.join()
                self._replace(i, f"timed out after {self.timeout:g}s")

    def _replace(self, i: int, reason: str) -> None:
        """Fail worker i's job (if any) with `reason` and start a fresh worker in its place."""
        w = self._workers[i]
        w.conn.close()
        if w.job is not None:
            seconds = time.monotonic() - w.job.started
            self._finish(Completion(w.job.job_id, error_result(reason), seconds))
        elif not w.ready:
            self._start_failed(f"workers died while starting ({reason}); check that {self._fn_ref} and its "
                               f"initializer import and run")
        if not self._closed:
            self._workers[i] = self._start_worker()


def _death_reason(exitcode: int | None) -> str:
    reason = f"worker process died (exit code {exitcode})"
    if exitcode is not None and exitcode < 0:
        try:
            reason = f"worker process died (exit code {exitcode}, {signal.Signals(-exitcode).name})"
        except ValueError:
            pass
    return reason
