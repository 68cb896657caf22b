"""Local worker processes that never outlive their study, and signals as one exception.

A study killed by kill -9, SIGTERM or Ctrl-C must leave no worker computing for nobody,
print no traceback per process, and be resumable by running the same command again:

* each worker dies with its parent: on Linux the kernel sends it SIGKILL when the parent
  dies (PR_SET_PDEATHSIG, kill -9 of the parent too), elsewhere a daemon thread exits the
  worker once its parent is gone;
* workers ignore SIGINT: Ctrl-C in a terminal reaches the whole process group, and only
  the parent answers it, by stopping the workers. SIGINT is blocked while workers are
  spawned, so that one arriving before a worker has set this up is dropped, not raised
  in it;
* the parent turns SIGINT and SIGTERM into `Interrupted`, so that one `except` path
  cleans up (stop the pool, remove temporary files) and the command line prints one line;
* multiprocessing's resource tracker, which outlives a killed parent only until its
  workers are gone, removes their semaphores without a warning.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import resource_tracker

PR_SET_PDEATHSIG = 1  # linux/prctl.h
QUIET_TRACKER = "ignore::UserWarning:multiprocessing.resource_tracker"


class Interrupted(KeyboardInterrupt):
    """The study was stopped by a signal; `exit_code` is the shell's 128 + signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Interrupted` (once: cleanup is not cut).

    Signal handlers belong to the main thread: elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = (signal.SIGINT, signal.SIGTERM)

    def handler(signum: int, frame: object) -> None:
        for number in caught:
            signal.signal(number, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {number: signal.signal(number, handler) for number in caught}
    try:
        yield
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


@contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread (and in processes spawned meanwhile) for the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def die_with_parent() -> bool:
    """Ask the kernel to kill this process when its parent dies; False if not possible.

    Linux only; it survives `exec`, so a subprocess can call it before it starts
    (`preexec_fn`), as the app's server does.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _init_worker(parent: int) -> None:
    """Set up a worker: ignore Ctrl-C, and die with the parent (if already gone, now)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # inherited blocked
    if not die_with_parent():
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the above took effect
        os._exit(1)


def _start_quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (if not running) without its leak warning.

    After kill -9 of the study the tracker removes the pool's semaphores, as it should,
    but also prints a two-line warning about them; it reads the filter when it starts.
    """
    previous = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (previous, QUIET_TRACKER)))
    try:
        resource_tracker.ensure_running()
    finally:
        if previous is None:
            del os.environ["PYTHONWARNINGS"]
        else:
            os.environ["PYTHONWARNINGS"] = previous


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes set up by `_init_worker`.

    Submit to it inside `sigint_blocked()`: processes start on submission.
    """
    _start_quiet_resource_tracker()
    return ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(os.getpid(),))


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and kill the workers now, without waiting for runs."""
    processes = list((pool._processes or {}).values())  # no public API before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()
    for process in processes:
        process.join()
