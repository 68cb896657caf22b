"""Exact replay: a run's records do not depend on what ran before it in the process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lfm_abm.agents.population import load_population
from lfm_abm.day import forget_days
from lfm_abm.model import LFMModel, ModelSettings

ROOT = Path(__file__).resolve().parents[1]
POPULATION = ROOT / "agents" / "cigre_mv.toml"
TABLES = ("rounds", "agents", "awards")
ROUNDS = 15


def records(design: str, seed: int, rounds: int = ROUNDS) -> dict[str, pd.DataFrame]:
    """Every record table of one cigre-mv run, timing columns aside."""
    settings = ModelSettings(grid="cigre-mv", population=load_population(POPULATION),
                             design=design, ac_every=1)
    model = LFMModel(settings, seed)
    for _ in range(rounds):
        model.step()
    tables = model.records()
    tables["rounds"] = tables["rounds"].drop(columns="solve_seconds")
    return {name: tables[name] for name in TABLES}


def save(design: str, seed: int, folder: str) -> None:
    """Write one run's records to `folder` (called in a fresh interpreter)."""
    for name, frame in records(design, seed).items():
        frame.to_parquet(Path(folder) / f"{name}.parquet")


@pytest.mark.slow
@pytest.mark.parametrize("design", ["CMVC_PQ", "CM_P>VC_Q"])
def test_a_run_after_another_equals_the_run_in_a_fresh_process(design, tmp_path):
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); " \
           f"from test_replay import save; save({design!r}, 3, {str(tmp_path)!r})"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=600)
    forget_days()
    records(design, 5)  # another seed first: its days, nets and AC caches stay behind
    after = records(design, 3)
    for name in TABLES:
        fresh = pd.read_parquet(tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(after[name], fresh, check_exact=True, obj=name)


def test_a_run_after_another_design_equals_the_run_alone():
    forget_days()
    alone = records("CM_P>VC_Q", 1, rounds=8)
    records("CMVC_PQ", 0, rounds=8)
    after = records("CM_P>VC_Q", 1, rounds=8)
    for name in TABLES:
        pd.testing.assert_frame_equal(after[name], alone[name], check_exact=True, obj=name)


def test_measuring_regret_during_a_run_leaves_its_records_unchanged():
    """Re-clearings for regret (AC between a sequential design's stages) use their own net."""
    settings = ModelSettings(grid="cigre-mv", population=load_population(POPULATION),
                             design="CM_P>VC_Q", ac_every=1)
    plain, measured = LFMModel(settings, 3), LFMModel(settings, 3)
    for round_ in range(1, 9):
        plain.step()
        measured.step()
        if round_ % 3 == 0:
            measured.equilibrium()
    pd.testing.assert_frame_equal(measured.records()["rounds"].drop(columns="solve_seconds"),
                                  plain.records()["rounds"].drop(columns="solve_seconds"),
                                  check_exact=True)
