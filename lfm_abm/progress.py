"""Rounds done by runs still running, so a study's progress bar moves between runs.

A run writes how many rounds it has played into a small file in its temporary folder
(`RoundsNote`, at most once per NOTE_SECONDS); the study's process sums those files
with the rounds of the finished runs (`RoundsWatch`, a thread polling every
WATCH_SECONDS). Without it a study of a few long runs sat at 0 % for minutes and its
ETA jumped at each finished run. Runs on a Dask cluster write on their own machines:
there the bar still moves run by run.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tqdm import tqdm

from lfm_abm.files import TMP_PREFIX

PROGRESS_FILE = "progress"
#: A running run rewrites its progress file at most this often.
NOTE_SECONDS = 1.0
#: The study's process reads the progress files this often.
WATCH_SECONDS = 1.0


class RoundsNote:
    """Called after each round of a run: writes the rounds done into `folder`."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / PROGRESS_FILE
        self._last = -float("inf")

    def __call__(self, rounds: int) -> None:
        """Note `rounds` done (written now if the last note is old enough)."""
        now = time.monotonic()
        if now - self._last >= NOTE_SECONDS:
            self.path.write_text(str(rounds))
            self._last = now

    def close(self) -> None:
        """Remove the note: the run's folder then holds its records only."""
        self.path.unlink(missing_ok=True)


class RoundsWatch:
    """Moves `bar` to the rounds of finished runs plus those of runs under `runs`."""

    def __init__(self, bar: tqdm, runs: Path) -> None:
        self.bar = bar
        self.runs = runs
        self.finished = 0  # rounds of the runs that ended (the caller adds them)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        """Poll in a background thread until `stop`."""
        self._thread.start()

    def stop(self) -> None:
        """End the polling (waits for the thread)."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            self.refresh()

    def running(self) -> int:
        """Rounds played so far by the runs still running here."""
        total = 0
        for path in self.runs.glob(f"{TMP_PREFIX}*/{PROGRESS_FILE}"):
            try:
                total += int(path.read_text())
            except (OSError, ValueError):  # just finished, or caught mid-write
                continue
        return total

    def refresh(self) -> None:
        """Move the bar forward (never back: a run's file goes before its rounds count)."""
        with self._lock:
            done = min(self.finished + self.running(), self.bar.total)
            if done > self.bar.n:
                self.bar.update(done - self.bar.n)
