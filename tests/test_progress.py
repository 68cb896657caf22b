"""The progress bar counts the rounds of runs still running, not only finished runs."""

from __future__ import annotations

import io

from tqdm import tqdm

from lfm_abm import progress
from lfm_abm.files import TMP_PREFIX
from lfm_abm.progress import RoundsNote, RoundsWatch


def test_running_runs_move_the_bar_and_it_never_goes_back(tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "NOTE_SECONDS", 0.0)
    first, second = (tmp_path / f"{TMP_PREFIX}run-{i}-x" for i in (1, 2))
    first.mkdir()
    second.mkdir()
    bar = tqdm(total=100, file=io.StringIO())
    watch = RoundsWatch(bar, tmp_path)
    note_first, note_second = RoundsNote(first), RoundsNote(second)
    note_first(7)
    note_second(12)
    watch.refresh()
    assert bar.n == 19
    (first / progress.PROGRESS_FILE).write_text("")  # caught mid-write: skipped
    watch.refresh()
    assert bar.n == 19  # never back
    first.rename(tmp_path / "run-1")  # finished: its folder is published ...
    watch.refresh()
    assert bar.n == 19
    watch.finished += 50  # ... and its rounds count as finished
    watch.refresh()
    assert bar.n == 62
    watch.finished += 60  # never beyond the total
    watch.refresh()
    assert bar.n == 100


def test_a_run_notes_its_rounds_at_most_once_a_second(tmp_path, monkeypatch):
    clock = iter([0.0, 0.5, 1.2, 1.3])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    note = RoundsNote(tmp_path)
    written = []
    for rounds in (1, 2, 3, 4):
        note(rounds)
        written.append(int((tmp_path / progress.PROGRESS_FILE).read_text()))
    assert written == [1, 1, 3, 3]
    note.close()
    assert not list(tmp_path.iterdir())  # the run's folder holds its records only
