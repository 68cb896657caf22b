"""Runs on flat memory, nothing half-written or falsely finished, one study per folder,
no worker left behind a killed study, one line on a full disk."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lfm_abm import files
from lfm_abm import study as study_module
from lfm_abm.agents.population import load_population
from lfm_abm.cli import main
from lfm_abm.files import TMP_PREFIX
from lfm_abm.folder_lock import folder_lock
from lfm_abm.model import LFMModel, ModelSettings
from lfm_abm.network.grids import default_scenario, load_grid
from lfm_abm.records import RecordSink
from lfm_abm.results import store
from lfm_abm.study import load_study, run_study

ROOT = Path(__file__).resolve().parents[1]
POPULATION = ROOT / "agents" / "cigre_mv.toml"


def spec_file(tmp_path: Path, designs: str = '["CMVC_PQ"]', rounds: int = 2) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(f'[study]\ngrid = "cigre-mv"\npopulation = "{POPULATION}"\n'
                    f"designs = {designs}\nrounds = {rounds}\nregret = false\n"
                    "references = false\n"
                    "[scenario]\nhours = [12, 13, 19, 20]\n")
    return path


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(f"{TMP_PREFIX}*")] + list(folder.rglob(".parts"))


# --- streaming records ------------------------------------------------------------------

def test_streamed_chunks_keep_the_types_pandas_gives_the_whole_table(tmp_path):
    """Chunks differ: only failed rounds (three columns), an int column with a gap, a
    column all None; the file has the types of the whole table built at once."""
    ok = [{"round": r, "day": None, "status": "ok", "cost": 1.5 * r, "iterations": r,
           "validated": r % 2 == 0} for r in range(3, 7)]
    chunks = [[{"round": 1, "day": None, "status": "failed: X"},
               {"round": 2, "day": None, "status": "failed: Y"}], ok[:2],
              [{"round": 5, "day": None, "status": "failed: Z"}, *ok[2:]]]
    sink = RecordSink(tmp_path, max_rows=1)
    for chunk in chunks:
        sink.add_rows("rounds", chunk)
        sink.end_round()
    assert len(list((tmp_path / ".parts").iterdir())) == 3
    whole = pd.DataFrame([row for chunk in chunks for row in chunk])
    whole.to_parquet(tmp_path / "reference.parquet", index=False)
    expected = pd.read_parquet(tmp_path / "reference.parquet")
    pd.testing.assert_frame_equal(sink.frames()["rounds"], expected)
    written = sink.close()
    pd.testing.assert_frame_equal(pd.read_parquet(written["rounds"]), expected)
    assert not (tmp_path / ".parts").exists()


def test_rows_added_column_by_column_make_the_table_built_at_once(tmp_path):
    """Awards are buffered as arrays (a frame per flush, not per round); a round with
    no rows and a flush in between change nothing; other columns are refused."""
    rounds = [{"bid_id": np.array(["a", "b"], dtype=object), "awarded": np.array([1.0, 2.5]),
               "round": np.array([1, 1])},
              {"bid_id": np.array([], dtype=object), "awarded": np.array([]),
               "round": np.array([], dtype=int)},
              {"bid_id": np.array(["c"], dtype=object), "awarded": np.array([0.5]),
               "round": np.array([3])}]
    sink = RecordSink(tmp_path, max_rows=2)
    for columns in rounds:
        sink.add_columns("awards", columns)
        sink.end_round()
    expected = pd.DataFrame({"bid_id": ["a", "b", "c"], "awarded": [1.0, 2.5, 0.5],
                             "round": [1, 1, 3]})
    pd.testing.assert_frame_equal(sink.frames()["awards"], expected)
    assert len(list((tmp_path / ".parts").iterdir())) == 2
    with pytest.raises(ValueError, match="differ"):
        sink.add_columns("awards", {"bid_id": np.array(["d"], dtype=object)})
        sink.add_columns("awards", {"awarded": np.array([1.0])})


def test_every_file_of_a_run_carries_its_tags_and_the_records_do_not(tmp_path):
    tags = {"run_id": "CM_P__pay-as-bid__population__s3", "design": "CM_P", "seed": 3}
    sink = RecordSink(tmp_path, max_rows=1, tags=tags)
    sink.add_rows("rounds", [{"round": 1, "dso_cost": 2.0}])
    sink.end_round()
    sink.add_rows("rounds", [{"round": 2, "dso_cost": 3.0}])
    assert list(sink.frames()["rounds"].columns) == ["round", "dso_cost"]
    on_disk = pd.read_parquet(sink.close()["rounds"])
    assert (on_disk.design == "CM_P").all() and (on_disk.seed == 3).all()
    assert list(on_disk.run_id.unique()) == [tags["run_id"]] and len(on_disk) == 2
    clashing = RecordSink(tmp_path / "x", tags={"round": 1})
    clashing.add_rows("rounds", [{"round": 1}])
    with pytest.raises(ValueError, match="also columns"):
        clashing.flush()


@pytest.fixture(scope="module")
def settings():
    scenario = replace(default_scenario(load_grid("cigre-mv")), hours=(12, 19))
    return ModelSettings("cigre-mv", load_population(POPULATION), "CMVC_PQ",
                         scenario=scenario, ac_every=3)


def test_a_spooled_model_gives_the_records_of_one_in_memory(settings, tmp_path):
    kept, spooled = LFMModel(settings, seed=3), LFMModel(settings, seed=3, spool=tmp_path)
    spooled.sink.max_rows = 40  # a part every round or two
    for _ in range(7):
        kept.step()
        spooled.step()
    kept.equilibrium()
    spooled.equilibrium()
    assert len(list((tmp_path / ".parts").glob("agents-*"))) >= 3
    assert len(spooled.sink._rows["agents"]) < 2 * len(kept.fsps) * 2  # a round or two
    memory = kept.records()
    written = spooled.save_records()
    assert list(written) == list(memory)
    for name, frame in memory.items():
        on_disk = pd.read_parquet(written[name]).drop(columns="solve_seconds", errors="ignore")
        pd.testing.assert_frame_equal(on_disk, frame.drop(columns="solve_seconds",
                                                          errors="ignore"),
                                      check_dtype=len(frame) > 0, check_index_type=False)
    assert len(spooled.records()["agents"]) == len(memory["agents"])  # read back when saved


# --- finished means complete --------------------------------------------------------------

def test_a_run_with_damaged_files_is_not_finished_and_is_recomputed(tmp_path):
    out = run_study(load_study(spec_file(tmp_path), out=str(tmp_path / "out")),
                    progress=False)
    (run,) = study_module.expand(load_study(spec_file(tmp_path), out=str(out)))
    assert store.is_finished(out, run.run_id, run.fingerprint)
    meta = store.run_meta(out, run.run_id)
    assert set(meta["files"]) == {f"{name}.parquet" for name in store.TABLES}
    folder = out / "runs" / run.run_id
    rounds = folder / "rounds.parquet"
    original = rounds.read_bytes()
    expected = pd.read_parquet(rounds).drop(columns="solve_seconds")
    rounds.write_bytes(original[: len(original) // 2])  # truncated after the fact
    assert not store.is_finished(out, run.run_id, run.fingerprint)
    (folder / "agents.parquet").unlink()
    assert not store.is_finished(out, run.run_id, run.fingerprint)
    (out / "runs" / f"{TMP_PREFIX}{run.run_id}-x").mkdir()  # as a killed worker leaves it
    (out / f"{TMP_PREFIX}summary.csv.x").write_text("half")
    run_study(load_study(spec_file(tmp_path), out=str(out)), progress=False)
    assert store.is_finished(out, run.run_id, run.fingerprint)
    pd.testing.assert_frame_equal(pd.read_parquet(rounds).drop(columns="solve_seconds"),
                                  expected)  # recomputed, the same
    assert not leftovers(out)


def test_a_run_without_rounds_fails_and_is_never_finished(tmp_path):
    spec = load_study(spec_file(tmp_path), out=str(tmp_path / "out"))
    (run,) = study_module.expand(spec)
    with pytest.raises(study_module.RunFailed):
        study_module.execute_run(replace(run, rounds=0), tmp_path / "out")
    assert not list((tmp_path / "out" / "runs").iterdir())  # not even a temporary folder


# --- one study per folder ---------------------------------------------------------------

def test_a_second_study_on_a_locked_folder_refuses_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from lfm_abm.folder_lock import folder_lock\n"
         f"with folder_lock(Path({str(out)!r})):\n"
         "    print('locked', flush=True)\n    time.sleep(120)\n"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = main(["run", str(spec_file(tmp_path)), "--out", str(out), "--quiet",
                     "--workers", "1"])
        captured = capsys.readouterr()
        assert code == 2 and captured.out == ""
        (line,) = captured.err.strip().splitlines()
        assert f"pid {holder.pid}" in line and str(out) in line
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(out):  # the holder died: its lock went with it
        assert (out / ".lock").read_text().strip() == str(os.getpid())


# --- a full disk ------------------------------------------------------------------------

def test_a_full_disk_gives_one_line_and_no_temporary_file(tmp_path, capsys, monkeypatch):
    def full(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "_fsync", full)
    out = tmp_path / "out"
    assert main(["run", str(spec_file(tmp_path)), "--out", str(out), "--quiet",
                 "--workers", "1"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"lfm-abm: error: cannot write {out}")
    assert line.endswith(": No space left on device")
    assert not leftovers(out)


# --- killed studies ---------------------------------------------------------------------

def session_processes(session: int) -> list[int]:
    """Live processes of a session (the study, its workers, the resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # fields: state, ppid, pgrp, sid
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Two runs of 30 rounds, uninterrupted, in this process."""
    folder = tmp_path_factory.mktemp("reference")
    spec = load_study(spec_file(folder, '["CMVC_PQ", "CM_P"]', rounds=30),
                      out=str(folder / "out"))
    return spec_file(folder, '["CMVC_PQ", "CM_P"]', rounds=30), run_study(spec, progress=False)


def rounds_of(out: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_parquet(p / "rounds.parquet").drop(columns="solve_seconds")
            for p in sorted((out / "runs").iterdir())}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.slow
@pytest.mark.parametrize(("signum", "group"), [(signal.SIGTERM, False), (signal.SIGINT, True),
                                               (signal.SIGKILL, False)])
def test_a_killed_study_leaves_no_worker_and_resumes_identically(reference, tmp_path, signum,
                                                                  group):
    spec, finished = reference
    out = tmp_path / "out"
    study = subprocess.Popen(
        [sys.executable, "-m", "lfm_abm.cli", "run", str(spec), "--workers", "2", "--quiet",
         "--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and study.poll() is None:  # both workers inside a run
        running = list((out / "runs").glob(f"{TMP_PREFIX}*")) if (out / "runs").is_dir() \
            else []
        if len(running) == 2:
            break
        time.sleep(0.1)
    assert study.poll() is None, "the study ended before it was interrupted"
    assert len(session_processes(study.pid)) >= 3  # the study and two workers at least
    (os.killpg if group else os.kill)(study.pid, signum)
    _, err = study.communicate(timeout=30)
    assert study.returncode in (128 + signum, -signum)
    assert len(err.strip().splitlines()) <= 1, err
    deadline = time.time() + 5
    while session_processes(study.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert session_processes(study.pid) == [], "a worker outlived its study"
    assert main(["run", str(spec), "--workers", "1", "--quiet", "--out", str(out)]) == 0
    resumed, expected = rounds_of(out), rounds_of(finished)
    assert list(resumed) == list(expected)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(resumed[name], frame)
    assert not leftovers(out)
    assert np.isfinite(pd.read_csv(out / "summary.csv").dso_cost_mean).all()
