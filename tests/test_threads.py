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
