"""How well do k representative days stand for the year? Checked where it can be exact.

A year from representative days assumes that a cluster's days cost what its medoid
costs. That cannot be checked for learned play without simulating every day, but it
can for what needs no learning: the emergency action each day needs without a market
(`unmet_need_no_market`, `cost_no_market`), one small LP per day. `year_without_market`
solves it for every day with a need; `representation_error` compares the weighted sum
over the chosen days with the exact sum. `lfm-abm days` prints both for several k.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from tqdm import tqdm

from lfm_abm.days import ChosenDay
from lfm_abm.market.clearing import MarketCase
from lfm_abm.market.params import MarketParams
from lfm_abm.network.needs import NeedLimits
from lfm_abm.network.scenarios import Scenario


def year_without_market(grid: str, scenario: Scenario, limits: NeedLimits,
                        params: MarketParams, days: Sequence[str],
                        progress: bool = False) -> pd.DataFrame:
    """Per day: the emergency action it needs without a market (MWh) and its cost (EUR)."""
    rows = []
    for day in tqdm(days, desc="emergency action per day", unit="day", disable=not progress):
        case = MarketCase.build(grid, scenario, day, limits, params)
        rows.append({"day": day, "mwh": case.baseline_emergency.emergency_mwh,
                     "cost": case.baseline_emergency_cost})
    return pd.DataFrame(rows, columns=["day", "mwh", "cost"])


def representation_error(by_day: pd.DataFrame, chosen: Sequence[ChosenDay]) -> dict[str, float]:
    """The year by the chosen days against the exact year: sums and relative errors."""
    at = by_day.set_index("day")
    out: dict[str, float] = {}
    for column in ("mwh", "cost"):
        exact = float(at[column].sum())
        estimate = float(sum(day.weight * at.loc[day.day, column] for day in chosen))
        out[f"{column}_exact"], out[f"{column}_estimate"] = exact, estimate
        out[f"{column}_error"] = estimate / exact - 1.0 if exact else float("nan")
    return out
