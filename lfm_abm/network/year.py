"""A scan of the profile year: which days need the DSO, and how badly, hour by hour.

Every day of the SimBench year is solved in AC (all 24 hours of a day in one batched
power flow, `network.batch`, day after day on the same internal model) and its needs
are found with the same definitions the market uses (`network.needs`). The result says
which days a market is for (those with a need) and gives each day's hourly profile of
what makes the needs (the highest branch loading and the highest and lowest voltage),
which `days.choose_days` clusters into representative days.

A scan of 366 days takes seconds to a minute per grid; it is cached on disk
(`cache_folder`) under a key of everything it depends on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from lfm_abm.errors import InputError, PowerFlowError
from lfm_abm.files import source_hash
from lfm_abm.network.batch import PF_TABLES, PeriodBatch, supports_batching
from lfm_abm.network.grids import load_grid
from lfm_abm.network.needs import NeedLimits, find_needs
from lfm_abm.network.operating_points import run_power_flow
from lfm_abm.network.scenarios import SIMBENCH_YEAR, Scenario, days_injections, is_simbench

#: Hourly features of a day: the highest branch loading (%), the highest and lowest
#: voltage (p.u.), the congestion need (MVA over limits) and the voltage need (p.u.
#: outside the band), each summed over branches or buses, and each at its worst branch
#: or bus (what emergency action must fix, so it follows the action's MWh more closely).
FEATURES = ("loading_max", "v_max", "v_min", "cm_need", "vc_need", "cm_worst", "vc_worst")
#: Columns of a day's row (`YearScan.days`).
DAY_FIELDS = ("day", "need_hours", "cm_need_mvah", "vc_need_puh", "loading_max", "v_max",
              "v_min", "converged")


@dataclass(frozen=True)
class YearScan:
    """The year's days and hours as the grid sees them without a market.

    days: one row per day: day (ISO), need_hours (hours with any need), cm_need_mvah
    (congestion excess summed over hours, MVA h), vc_need_puh (voltage excess summed
    over buses and hours, p.u. h), loading_max (% of the limit), v_max, v_min (p.u.),
    converged (False: the day's AC power flow failed; it counts as a day with needs).
    hourly: one row per day and hour: day, hour and the `FEATURES`.
    """

    days: pd.DataFrame
    hourly: pd.DataFrame

    @property
    def need_days(self) -> list[str]:
        """Days with a need (or a failed power flow), in calendar order."""
        return self.days.day[(self.days.need_hours > 0) | ~self.days.converged].tolist()


def year_days() -> list[str]:
    """Every day of the SimBench profile year, ISO."""
    first = dt.date(SIMBENCH_YEAR, 1, 1)
    count = (dt.date(SIMBENCH_YEAR + 1, 1, 1) - first).days
    return [(first + dt.timedelta(days=d)).isoformat() for d in range(count)]


def cache_folder() -> Path:
    """Where scans are kept: $LFM_ABM_CACHE, else $XDG_CACHE_HOME/lfm-abm, ~/.cache/lfm-abm."""
    if os.environ.get("LFM_ABM_CACHE"):
        return Path(os.environ["LFM_ABM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lfm-abm"


def scan_year(grid: str, scenario: Scenario, limits: NeedLimits,
              days: list[str] | None = None, progress: bool = False) -> YearScan:
    """The `YearScan` of `days` (default: the whole year), from the cache when there.

    `scenario.days` is ignored (the scan chooses days); its hours and growth factors
    apply. A grid without a profile year (not SimBench) is an error naming the grid.
    """
    days = year_days() if days is None else list(days)
    key = _key(grid, scenario, limits, days)
    path = cache_folder() / "year-scans" / f"{key}.parquet"
    if path.is_file():
        try:
            stored = pd.read_parquet(path)
        except (OSError, ValueError):
            stored = None  # a damaged cache file is scanned again
        if stored is not None:
            return _split(stored)
    scan = _scan(grid, scenario, limits, days, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    _joined(scan).to_parquet(tmp)
    tmp.replace(path)
    return scan


def _key(grid: str, scenario: Scenario, limits: NeedLimits, days: list[str]) -> str:
    grid_file = Path(grid)
    identity = {"grid": grid_file.read_text() if grid_file.is_file() else grid,
                "scenario": {k: v for k, v in asdict(scenario).items()
                             if k not in ("source", "days")},
                "limits": asdict(limits), "days": days,
                "code": source_hash(Path(__file__).parent),  # another scan code, another scan
                "versions": [metadata.version(name) for name in ("pandapower", "simbench")]}
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _scan(grid: str, scenario: Scenario, limits: NeedLimits, days: list[str],
          progress: bool) -> YearScan:
    net = load_grid(grid)
    if not is_simbench(net):
        raise InputError(f"grid {grid!r} has no profile year: days can be chosen only on a "
                         "SimBench grid", field="days", allowed=["simbench-semiurb",
                                                                 "simbench-rural", "..."])
    if not supports_batching(net):
        raise InputError(f"grid {grid!r} has elements the year scan's batched power flow "
                         f"does not copy (it copies {', '.join(PF_TABLES)})", field="days")
    injections = days_injections(net, scenario, days)
    hours = len(scenario.hours)
    injections.apply(net, 0)
    run_power_flow(net, injections.labels[0])  # the batch maps its copies onto this model
    batch = PeriodBatch(net, injections, range(hours), pd.Series(dtype=int),
                        scenario.period_hours)
    no_flex = np.zeros((hours, 0))
    day_rows, hour_rows = [], []
    for d, day in enumerate(tqdm(days, desc="scanning days", unit="day", disable=not progress)):
        batch.set_periods(injections, range(d * hours, (d + 1) * hours))
        try:
            points = batch.run(no_flex, no_flex)
        except PowerFlowError as error:
            warnings.warn(f"{day}: {error}; the day counts as one with needs", stacklevel=2)
            day_rows.append(_failed_day(day))
            continue
        needs = find_needs(points, limits)
        loading = [max(np.max(op.branches.line.loading_percent.to_numpy(), initial=0.0),
                       np.max(op.branches.trafo.loading_percent.to_numpy(), initial=0.0))
                   for op in points]
        v_max = [op.vm_pu.max() for op in points]
        v_min = [op.vm_pu.min() for op in points]
        summed, worst = (needs.groupby(["period", "service"]).need.agg(how)
                         .unstack(fill_value=0.0)
                         .reindex(index=batch.periods, columns=["CM", "VC"], fill_value=0.0)
                         for how in ("sum", "max"))
        hour_rows.append(pd.DataFrame({
            "day": day, "hour": list(scenario.hours), "loading_max": loading, "v_max": v_max,
            "v_min": v_min, "cm_need": summed.CM.to_numpy(), "vc_need": summed.VC.to_numpy(),
            "cm_worst": worst.CM.to_numpy(), "vc_worst": worst.VC.to_numpy()}))
        day_rows.append({"day": day, "need_hours": int(needs.period.nunique()),
                         "cm_need_mvah": float(summed.CM.sum() * scenario.period_hours),
                         "vc_need_puh": float(summed.VC.sum() * scenario.period_hours),
                         "loading_max": max(loading), "v_max": max(v_max), "v_min": min(v_min),
                         "converged": True})
    hourly = (pd.concat(hour_rows, ignore_index=True) if hour_rows
              else pd.DataFrame(columns=["day", "hour", *FEATURES]))
    return YearScan(pd.DataFrame(day_rows), hourly)


def _failed_day(day: str) -> dict:
    return {"day": day, "need_hours": 0, "cm_need_mvah": np.nan, "vc_need_puh": np.nan,
            "loading_max": np.nan, "v_max": np.nan, "v_min": np.nan, "converged": False}


def _joined(scan: YearScan) -> pd.DataFrame:
    """Both frames in one table for the cache (hour -1: the day's own row)."""
    days = scan.days.assign(hour=-1)
    return pd.concat([days, scan.hourly], ignore_index=True)


def _split(stored: pd.DataFrame) -> YearScan:
    days = stored[stored.hour == -1][list(DAY_FIELDS)].reset_index(drop=True)
    days["converged"] = days.converged.astype(bool)
    days["need_hours"] = days.need_hours.astype(int)
    hourly = stored[stored.hour >= 0][["day", "hour", *FEATURES]].reset_index(drop=True)
    hourly["hour"] = hourly.hour.astype(int)
    return YearScan(days, hourly)
