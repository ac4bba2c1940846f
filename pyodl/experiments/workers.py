"""Subjects side by side: an experiment's per-subject work in local worker processes (``--workers N``) or as
tasks on an existing Ray cluster (``--ray ADDRESS``).

Each subject's run is already self-contained and seeded by the subject (its general model from the shared
cache, its own temporary build folder and simulated board, ``default_rng([seed, subject])``), so running
subjects in other processes changes no number: the report lists them in the order asked for, as a
sequential run does. Workers are started with ``spawn``, not ``fork``: TensorFlow and Unicorn hold threads
and native state that a forked child must not inherit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from pyodl.experiments import fleet
from pyodl.experiments.trainer import Progress

T = TypeVar("T")


def quiet(what: str, done: int, total: int) -> None:
    """A worker's progress callback: its bars would interleave with the others', so the parent counts subjects."""


def run_each(fn: Callable[..., T], jobs: Sequence[dict[str, Any]], workers: int, progress: Progress,
             what: str = "subjects", ray_address: str | None = None,
             on_result: Callable[[int, T], None] | None = None) -> list[T]:
    """``[fn(**job, progress=...) for job in jobs]``, in the jobs' order: here with ``progress`` when
    ``workers`` is 1, else in up to ``workers`` processes with :func:`quiet` (``fn`` and every argument must
    then pickle: a module-level function), or as one Ray task each on the cluster at ``ray_address`` (its
    nodes need pyodl installed). The first failure is raised here once the running jobs stop, the queued ones
    cancelled and the running ones interrupted (SIGINT, then SIGTERM), so each leaves through its own cleanup
    whether the parent got Ctrl-C (the whole process group) or a SIGTERM of its own. ``on_result(index,
    result)`` is called here as each job finishes, in the order they finish (a run's results are kept as they
    come, so that an interrupted run loses only the jobs in flight)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    done_with = on_result or (lambda _index, _result: None)
    if ray_address:
        return _on_ray(fn, jobs, ray_address, progress, what, done_with)
    if workers == 1:
        results = []
        progress(what, 0, len(jobs))  # beside each job's own bars: how many are done, and when all will be
        for index, job in enumerate(jobs):
            results.append(fn(**job, progress=progress))
            done_with(index, results[-1])
            progress(what, index + 1, len(jobs))
        return results
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, max(len(jobs), 1)), mp_context=context,
                             initializer=_heed_interrupts) as pool:
        futures: list[Future[T]] = [pool.submit(fn, **job, progress=quiet) for job in jobs]
        try:
            pending = set(futures)
            progress(what, 0, len(futures))
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                progress(what, len(futures) - len(pending), len(futures))
                for future in done:
                    if future.exception() is not None:
                        raise future.exception()  # type: ignore[misc]
                for future in sorted(done, key=futures.index):
                    done_with(futures.index(future), future.result())
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            _interrupt_workers(pool)
            raise


def _heed_interrupts() -> None:
    """A worker's first act: SIGINT raises KeyboardInterrupt, since the parent stops its workers with it. A run
    started where SIGINT is ignored (in the background by a non-interactive shell, under nohup) would otherwise
    hand that on to its workers, and they would run on for the grace period after the parent stopped."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _interrupt_workers(pool: ProcessPoolExecutor, grace_s: float = 20.0) -> None:
    """Stop the jobs still running: leaving the pool would wait for them to finish, and a parent stopped by
    SIGTERM alone (not Ctrl-C, which reaches the whole process group) would leave them running. Each gets
    SIGINT, so it leaves through its own cleanup (temporary folders, boards), then SIGTERM after ``grace_s``."""
    processes = list(getattr(pool, "_processes", {}).values())  # no public handle on the workers
    pool.shutdown(wait=False, cancel_futures=True)  # idle workers are told to leave
    for process in processes:
        if process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.0))
        if process.is_alive():
            process.terminate()


def _call(fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    """A Ray task: Ray's decorator takes functions only, ``fn`` may be any callable (a bound method)."""
    return fn(**kwargs)


def _on_ray(fn: Callable[..., T], jobs: Sequence[dict[str, Any]], address: str, progress: Progress,
            what: str, done_with: Callable[[int, T], None]) -> list[T]:
    """One task per job on the Ray cluster at ``address``, one CPU each; results in the jobs' order."""
    fleet.require("ray")
    import ray

    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, ValueError) as exc:
        raise RuntimeError(f"no Ray cluster at {address!r}: {exc} (start one with `ray start --head`, and give "
                           "the address it prints)") from None
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_call)
        refs = [task.remote(fn, {**job, "progress": quiet}) for job in jobs]
        pending = list(refs)
        try:
            progress(what, 0, len(refs))
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                (result,) = ray.get(done)  # the task's own exception, raised here
                progress(what, len(refs) - len(pending), len(refs))
                done_with(refs.index(done[0]), result)
            return list(ray.get(refs))
        except BaseException:
            # Only the tasks still pending, and not forced: Ray 2.55 aborts the driver when asked to cancel a
            # task that has finished ("Tried to complete task that was not pending", 1 run in 3). A task already
            # running ends with this job, when ray.shutdown() disconnects it.
            for ref in pending:
                ray.cancel(ref)
            raise
    finally:
        ray.shutdown()
