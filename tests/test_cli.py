"""The command line: real output on built-in grids and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lfm_abm.cli import main


def test_needs_on_cigre_prints_both_kinds(capsys, tmp_path):
    out_csv = tmp_path / "needs.csv"
    assert main(["needs", "--grid", "cigre-mv", "--out", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "line 1" in out and "bus 11" in out
    assert "congestion needs" in out and out_csv.exists()


def test_unknown_grid_exits_2_with_one_line(capsys):
    assert main(["needs", "--grid", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cigre-mv" in err


def test_bad_day_exits_2(capsys):
    assert main(["needs", "--grid", "cigre-mv", "--day", "July"]) == 2
    assert "days" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "lfm_abm.cli", "--help"],
                            capture_output=True, text=True, check=True)
    assert "needs" in result.stdout
