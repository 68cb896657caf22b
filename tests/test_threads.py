"""Runs in threads of one process share only what never changes: records equal serial runs."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from lfm_abm.agents.population import load_population
from lfm_abm.day import private_case, shared_case
from lfm_abm.market.params import MarketParams
from lfm_abm.model import LFMModel, ModelSettings
from lfm_abm.network.grids import default_scenario, load_grid
from lfm_abm.network.needs import NeedLimits

ROOT = Path(__file__).resolve().parents[1]
GRID = "simbench-semiurb"
#: joint, sequential and single-product designs: different stages, rows and AC work.
DESIGNS = ("CMVC_PQ", "CM_P>VC_Q", "CM_P", "VC_Q")
TIMING = ["solve_seconds"]


def run_tables(design: str) -> dict[str, pd.DataFrame]:
    settings = ModelSettings(grid=GRID, population=load_population(
        ROOT / "agents" / "simbench_semiurb.toml"), design=design, ac_every=1)
    model = LFMModel(settings, seed=3)
    for _ in range(2):
        model.step()
    tables = model.records()
    tables["rounds"] = tables["rounds"].drop(columns=TIMING)
    return {name: tables[name] for name in ("rounds", "agents", "awards")}


def test_a_private_case_owns_its_net():
    scenario = default_scenario(load_grid(GRID))
    shared = shared_case(GRID, scenario, scenario.days[0], NeedLimits(), MarketParams())
    first, second = private_case(shared), private_case(shared)
    assert first.net is not shared.net and second.net is not first.net
    assert first.evaluator.net is first.net
    assert first.points is shared.points  # the read-only baseline stays shared


@pytest.mark.slow
def test_four_runs_in_threads_equal_the_same_runs_one_after_another():
    serial = [run_tables(design) for design in DESIGNS]  # also warms the shared cases
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: races show up, not only by luck
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            threaded = list(pool.map(run_tables, DESIGNS))
    finally:
        sys.setswitchinterval(interval)
    for design, alone, together in zip(DESIGNS, serial, threaded, strict=True):
        assert len(alone["rounds"]) == 2 and (alone["rounds"].status == "ok").all(), design
        for name in alone:
            pd.testing.assert_frame_equal(alone[name], together[name], obj=f"{design} {name}")


def test_a_run_on_a_day_built_before_equals_a_run_that_builds_it():
    """The shared day (book, structure, benchmark) and the copied AC batch change nothing."""
    from lfm_abm import day

    day.forget_days()
    cold = run_tables("CMVC_PQ")  # builds the case, the day and the batch
    warm = run_tables("CMVC_PQ")  # copies them
    model = LFMModel(ModelSettings(grid=GRID, population=load_population(
        ROOT / "agents" / "simbench_semiurb.toml"), design="CMVC_PQ"), seed=3)
    shared = next(iter(day._DAYS.values()))
    first = model.day(model.days[0])
    assert first.book is shared.book and first.case.net is not shared.case.net
    assert first.case.evaluator.batches is shared.case.evaluator.batches
    for name in cold:
        pd.testing.assert_frame_equal(cold[name], warm[name], obj=name)
