"""One study at a time per output folder: an advisory lock on `<out>/.lock`.

Two `lfm-abm run` on one folder would overwrite each other's runs, manifest, summary,
plots and report without a word; the second one refuses instead, naming the first.
`fcntl.flock` is released by the kernel when its holder exits, however it exits (kill -9
too), so a stale lock recovers by itself and never needs removing by hand; the file
holds the holder's pid only for the message. The file itself stays: removing it while
another process waits on it would let two holders in.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lfm_abm.errors import InputError

LOCK = ".lock"


def _holder(fd: int) -> str:
    """The pid written by the lock's holder (it writes just after locking: retry briefly)."""
    for _ in range(10):
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if pid:
            return pid
        time.sleep(0.05)
    return "unknown"


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold `folder`'s lock for the block; InputError naming the holder's pid if taken."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"another lfm-abm run (pid {_holder(fd)}) is writing to this "
                             "folder; wait for it to finish or choose another --out",
                             source=str(folder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock
