"""Evaluations in worker processes on this machine: `ProcessExecutor`, the local backend's pool
(controller/executors.py has the Executor protocol and the pool body it shares with
controller/ray_executor.py).

    with ProcessExecutor("nos_symbolic.evaluate:evaluate_job", workers=4, timeout=600) as ex:
        ex.submit(0, payload)
        for c in ex.poll(timeout=1.0):
            ...

A worker process runs one job at a time: a job that overruns its timeout or kills its worker fails
alone, and the worker is replaced.
"""
from __future__ import annotations

import os
import pickle
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing import connection, get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from controller.executors import (
    THREAD_ENV,
    Completion,
    ExecutorError,
    PoolExecutor,
    WorkFn,
    error_result,
    limit_torch_threads,
    resolve_callable,
    run_job,
)

_JOIN_TIMEOUT_S = 5.0


# The pipe protocol.
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
