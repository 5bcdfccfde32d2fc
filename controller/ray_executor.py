"""Evaluations on Ray: a local Ray instance on a laptop, or a cluster of many machines.

`RayExecutor` is the `Executor` behind `nos search --backend ray`. It keeps a pool of `workers` Ray
actors, each holding `num_cpus`/`num_gpus` of the cluster's resources. An actor imports the work
function by name and runs the initializer once (building the task's data), then evaluates one payload
at a time, so `--workers N` means N evaluations at once wherever the cluster places them. Payloads are
plain data (rule text and the evaluation config); no closure is pickled.

    with RayExecutor("nos_symbolic.evaluate:evaluate_job", workers=8, timeout=600,
                     initializer="nos_symbolic.evaluate:warm_worker", initargs=(eval_config,),
                     address="auto", num_cpus=1) as ex:
        ex.submit(0, payload)
        for c in ex.poll(timeout=1.0):
            ...

Faults come back as results, never as exceptions into the loop:
  - an actor lost mid-evaluation (its process killed, a crash, its node gone) is replaced and the
    evaluation runs again on the fresh actor, up to `max_retries` times; then the evaluation is
    recorded as error "worker lost after N attempts: ...". Evaluations are seeded, so a retry
    gives the result the lost attempt would have given.
  - an evaluation that runs past `timeout` seconds has its actor killed and replaced, and is recorded
    as error "timed out after Ns" (not retried: it would time out again).
  - an exception inside the work function is an error result with its type and message.

Ray is an optional dependency (the `ray` extra). Nothing imports it until an executor is built.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
from nos_symbolic.errors import NosError, SettingError

RAY_MISSING = "the ray backend needs Ray: pip install 'nos-symbolic[ray]'"
_REASON_CHARS = 300
_NICENESS_ENV = "RAY_worker_niceness"  # read by the raylet that ray.init starts


def require_ray() -> Any:
    """The `ray` module; NosError naming the extra to install when it is missing."""
    try:
        import ray
    except ImportError:
        raise NosError(RAY_MISSING) from None
    return ray


def connect_ray(address: str | None = None, num_cpus: float | None = None) -> str:
    """Start a local Ray instance or connect to a cluster; says which: "started", "connected" or
    "reused" (this process was already connected, and the caller that set Ray up keeps it).

    address: "auto" (the cluster `ray start` runs on this machine), "ray://host:10001" (Ray Client)
             or "host:6379". None starts a fresh local instance, even if a `ray start` cluster runs
             here, unless RAY_ADDRESS names a cluster (as it does for a driver `ray job submit` runs).
    A local instance gets `num_cpus` logical CPUs (default: the machine's cores) and no dashboard;
    worker output stays out of the search's terminal.
    """
    ray = require_ray()
    if ray.is_initialized():
        return "reused"
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    address = address or os.environ.get("RAY_ADDRESS") or None
    with _token_notice_off():
        if address is None:
            _start_local(ray, num_cpus, quiet)
            return "started"
        try:
            ray.init(address=address, **quiet)
        except Exception as err:  # no cluster there, Ray Client not installed, a token refused, ...
            hint = ("; is a cluster running there (`ray start --head`), and if it uses token authentication "
                    "(Ray's default), is RAY_AUTH_MODE=token set?") if isinstance(err, ConnectionError) else ""
            raise NosError(f"cannot connect to the Ray cluster at {address}: {_short(err).rstrip('.')}{hint}") \
                from None
    return "connected"


@contextmanager
def _token_notice_off() -> Iterator[None]:
    """Ray logs a warning that token authentication is on (its default) on every start and connection."""
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = notice.level
    notice.setLevel(logging.ERROR)
    try:
        yield
    finally:
        notice.setLevel(level)


def _start_local(ray: Any, num_cpus: float | None, quiet: dict[str, Any]) -> None:
    # Ray runs workers at nice 15; the local backend's workers run at the search's own priority,
    # and on a busy machine the evaluations would otherwise yield to everything else.
    niceness = os.environ.get(_NICENESS_ENV)
    os.environ[_NICENESS_ENV] = niceness or "0"
    try:
        # "local": a new instance, never a cluster found on this machine (that is --address auto).
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
    finally:
        if niceness is None:
            del os.environ[_NICENESS_ENV]


class _EvalWorker:
    """The body of one Ray actor: set up once, then run payloads one at a time.

    The constructor never raises: a failing initializer is reported by `ready()`, so the executor can
    tell a broken setup (stop the search) from a lost process (replace it).
    """

    def __init__(self, fn_ref: str, init_ref: str | None, initargs: tuple[Any, ...], threads: int,
                 sys_path: list[str]) -> None:
        # The driver's import path, as a spawned worker process would have it: modules the driver can
        # import by name (the work function's) are importable here when the same paths exist.
        sys.path.extend(p for p in sys_path if p not in sys.path and os.path.exists(p))
        for name in THREAD_ENV:
            os.environ[name] = str(threads)
        self.error_result: tuple[str, str] | None = None
        try:
            self._fn = resolve_callable(fn_ref)
            if init_ref is not None:
                resolve_callable(init_ref)(*initargs)
            if "torch" in sys.modules:
                limit_torch_threads(sys.modules["torch"], threads)
        except BaseException as e:
            self.error_result = (f"{type(e).__name__}: {e}", traceback.format_exc())

    def ready(self) -> tuple[int, tuple[str, str] | None]:
        """(process id, None) once set up; (process id, (reason, traceback)) if set-up failed."""
        return os.getpid(), self.error_result

    def run(self, payload: Any) -> tuple[Any, str, float]:
        """(EvalResult, traceback or "", seconds inside the work function)."""
        return run_job(self._fn, payload)


@dataclass
class _Job:
    job_id: int
    payload: Any
    attempts: int = 0  # runs that ended with the actor lost
    seconds: float = 0.0  # worker time spent on those runs


@dataclass
class _Slot:
    """One actor of the pool and the job it runs."""

    actor: Any
    ready_ref: Any  # the pending `ready()` call; None once the actor is set up
    pid: int | None = None
    job: _Job | None = None
    ref: Any = None  # the pending `run()` call
    started: float = 0.0  # time.monotonic() when the job was handed over


class RayExecutor(PoolExecutor):
    """Evaluations on `workers` Ray actors, one job per actor at a time (see the module docstring).

    address:     None starts a local Ray instance with at least `workers * num_cpus` CPUs, shut down
                 by `close()`; "auto" (this machine is a node of the cluster) or "ray://host:10001"
                 connects to a running cluster, and `close()` then only kills this executor's actors
                 and disconnects (see `connect_ray`). If this process is already connected to Ray,
                 that connection is used and left open.
    num_cpus, num_gpus: Ray resources each actor holds. Torch in an actor gets floor(num_cpus)
                 threads (at least 1); Ray gives it CUDA_VISIBLE_DEVICES for its GPUs.
    max_retries: runs of an evaluation after the first that may end with the actor lost.

    The timeout clock starts when a set-up actor receives the job, so start-up, the initializer and
    waiting for cluster resources are not charged to any evaluation.
    """

    def __init__(
        self,
        fn: WorkFn,
        workers: int,
        timeout: float | None = None,
        initializer: WorkFn | None = None,
        initargs: tuple[Any, ...] = (),
        address: str | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        max_retries: int = 2,
    ) -> None:
        super().__init__(fn, workers, timeout, initializer)
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if num_cpus < 0 or num_gpus < 0:
            raise SettingError(f"{{0}} and {{1}} must be >= 0, got {num_cpus:g} and {num_gpus:g}",
                               "cpus_per_eval", "gpus_per_eval")
        self._ray = require_ray()
        self.max_retries = max_retries
        self._initargs = tuple(initargs)
        self._threads = max(math.floor(num_cpus), 1)
        self._slots: list[_Slot] = []
        connection = connect_ray(address, max(math.ceil(workers * num_cpus), os.cpu_count() or 1))
        self._owns_ray = connection != "reused"
        try:
            self._check_resources(num_cpus, num_gpus, started_here=connection == "started")
            self._actor_class = self._ray.remote(_EvalWorker).options(
                num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0, max_task_retries=0)
            self._slots = [self._start_slot() for _ in range(workers)]
        except BaseException:
            self.close()
            raise

    # -- the pool's part of the Executor protocol ------------------------------------------------------

    def _make_job(self, job_id: int, payload: Any) -> _Job:
        return _Job(job_id, payload)

    def _stop(self) -> None:
        """Kill this executor's actors; stop Ray if this executor started it or connected to it."""
        for slot in self._slots:
            self._kill(slot.actor)
        self._slots = []
        if self._owns_ray:
            self._ray.shutdown()  # a connected driver disconnects; the cluster keeps running

    def _all_ready(self) -> bool:
        return all(s.ready_ref is None for s in self._slots)

    def _running_since(self) -> list[float]:
        return [s.started for s in self._slots if s.job is not None]

    def worker_pids(self) -> list[int | None]:
        """Process ids of the actors (None while one starts); they change when an actor is replaced."""
        return [s.pid for s in self._slots]

    # -- machinery -----------------------------------------------------------------------------------

    def _check_resources(self, num_cpus: float, num_gpus: float, started_here: bool) -> None:
        """Refuse (local instance) or warn about (cluster) an actor no node can hold: it would wait
        forever. A cluster may still grow, so there it is a warning."""
        nodes = [n.get("Resources", {}) for n in self._ray.nodes() if n.get("Alive")]
        if any(r.get("CPU", 0) >= num_cpus and r.get("GPU", 0) >= num_gpus for r in nodes):
            return
        have = ", ".join(f"{r.get('CPU', 0):g} CPU {r.get('GPU', 0):g} GPU" for r in nodes) or "none"
        need = f"no Ray node has the {num_cpus:g} CPU and {num_gpus:g} GPU one evaluation needs (nodes: {have})"
        if started_here:
            raise SettingError(need + "; lower {0}/{1}", "cpus_per_eval", "gpus_per_eval")
        warnings.warn(need + "; lower the CPUs or GPUs per evaluation or add nodes to the cluster",
                      RuntimeWarning, stacklevel=3)

    def _start_slot(self) -> _Slot:
        actor = self._actor_class.remote(self._fn_ref, self._init_ref, self._initargs, self._threads,
                                         list(sys.path))
        return _Slot(actor, actor.ready.remote())

    def _kill(self, actor: Any) -> None:
        try:
            self._ray.kill(actor, no_restart=True)
        except Exception:  # already dead, or the connection is gone: either way it runs nothing
            pass

    def _dispatch(self) -> None:
        for slot in self._slots:
            if not self._pending:
                return
            if slot.ready_ref is None and slot.job is None:
                slot.job = self._pending.popleft()
                slot.started = time.monotonic()
                slot.ref = slot.actor.run.remote(slot.job.payload)

    def _collect(self, wait: float | None, only_starting: bool = False) -> None:
        """Wait up to `wait` s for a set-up or a job to finish, handle all that have, enforce deadlines."""
        watched: dict[Any, tuple[int, bool]] = {}  # ref -> (slot, is it a set-up?)
        for i, slot in enumerate(self._slots):
            if slot.ready_ref is not None:
                watched[slot.ready_ref] = (i, True)
            elif slot.ref is not None and not only_starting:
                watched[slot.ref] = (i, False)
        if watched:
            refs = list(watched)
            ready, _ = self._ray.wait(refs, num_returns=1, timeout=self._until_next_deadline(wait))
            if ready:
                ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in ready:
                i, setup = watched[ref]
                if setup:
                    self._on_ready(i)
                else:
                    self._on_result(i)
        elif wait:
            time.sleep(min(wait, 0.05))  # nothing to wait on; let the caller's clock run
        self._enforce_deadlines()

    def _on_ready(self, i: int) -> None:
        slot = self._slots[i]
        try:
            pid, error = self._ray.get(slot.ready_ref)
        except self._ray.exceptions.RayError as err:  # died while starting
            self._start_failed(f"Ray workers died while starting ({_short(err)}); check that nos-symbolic is "
                               f"installed where Ray runs them and that {self._fn_ref} imports")
            self._kill(slot.actor)
            self._slots[i] = self._start_slot()
            return
        if error is not None:
            raise ExecutorError(f"worker initialisation failed: {error[0]}\n{error[1]}")
        slot.ready_ref, slot.pid = None, pid
        self._start_failures = 0

    def _on_result(self, i: int) -> None:
        slot, exceptions = self._slots[i], self._ray.exceptions
        job, seconds = slot.job, time.monotonic() - slot.started
        assert job is not None
        try:
            result, detail, seconds = self._ray.get(slot.ref)
        except exceptions.RayTaskError as err:  # `run` itself raised, e.g. a result Ray cannot send
            cause = getattr(err, "cause", None) or err
            result, detail = error_result(_short(cause)), str(err)
        except exceptions.RayError as err:  # the actor, its process or its node is gone
            self._replace(i)
            self._lost(job, seconds, _short(err))
            return
        slot.job, slot.ref = None, None
        self._finish(Completion(job.job_id, result, job.seconds + seconds, detail))

    def _lost(self, job: _Job, seconds: float, why: str) -> None:
        job.attempts += 1
        job.seconds += seconds
        if job.attempts > self.max_retries:
            reason = f"worker lost after {job.attempts} attempts: {why}"
            self._finish(Completion(job.job_id, error_result(reason), job.seconds))
        else:
            self._pending.appendleft(job)  # next free actor, ahead of later jobs

    def _enforce_deadlines(self) -> None:
        if self.timeout is None:
            return
        for i, slot in enumerate(self._slots):
            if slot.job is None or time.monotonic() - slot.started < self.timeout:
                continue
            if self._ray.wait([slot.ref], timeout=0)[0]:  # finished just now
                self._on_result(i)
                continue
            job, seconds = slot.job, time.monotonic() - slot.started
            self._replace(i)
            reason = f"timed out after {self.timeout:g}s"
            self._finish(Completion(job.job_id, error_result(reason), job.seconds + seconds))

    def _replace(self, i: int) -> None:
        """Kill actor i (whatever it was doing) and start a fresh one in its place."""
        self._kill(self._slots[i].actor)
        self._slots[i] = self._start_slot()


def _short(err: BaseException) -> str:
    """The first line of an exception, for an EvalResult's reason (Ray's go on with ids and advice)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:_REASON_CHARS]
