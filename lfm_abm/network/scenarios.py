"""Scenarios: which periods are simulated and how the grid's loads and generation scale.

A scenario turns a grid's reference element values into per-period injections:

* SimBench grids use their own yearly 15-min profiles (year 2016), averaged per hour,
  for the chosen day(s).
* Other grids (CIGRE MV, JSON files) use the documented synthetic daily shapes below,
  applied to the reference values (reference = peak load, rated PV/wind).

Growth assumptions are explicit scale factors (`load_scale`, `pv_scale`, `wind_scale`;
SimBench's "storage" elements are PV home systems with a battery that only ever feed
in, so they scale with `pv_scale`)
plus optional EV charging load (`ev_peak_mw`): new loads spread over the distribution
load buses in proportion to their reference load, following `EV_SHAPE`. Loads at a
transformer's LV busbar are left out: on the built-in grids they stand for other
feeders or upstream customers, not for households that charge cars.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Annotated

import numpy as np
import pandapower as pp
import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.network.simbench_data import simbench_profiles
from lfm_abm.schema import Field, Float, Int, Text, build, settings

#: Synthetic load shape (1.0 = reference peak), hour 0..23: residential/commercial mix
#: with a morning shoulder, a midday dip and the evening peak at 18-19 h.
LOAD_SHAPE = np.array(
    [0.55, 0.50, 0.48, 0.47, 0.48, 0.55, 0.66, 0.76, 0.78, 0.76, 0.72, 0.68,
     0.64, 0.62, 0.63, 0.68, 0.80, 0.93, 1.00, 1.00, 0.94, 0.84, 0.72, 0.62]
)  # fmt: skip
#: Synthetic clear-sky PV shape (1.0 = rated output): sin^1.5 between 6 h and 20 h.
PV_SHAPE = np.array(
    [max(0.0, math.sin(math.pi * (h - 6) / 14)) ** 1.5 if 6 <= h <= 20 else 0.0 for h in range(24)]
)
#: Synthetic wind shape (1.0 = rated): a moderate day, windier at night.
WIND_SHAPE = np.array(
    [0.45, 0.46, 0.47, 0.47, 0.46, 0.44, 0.40, 0.36, 0.32, 0.29, 0.27, 0.26,
     0.26, 0.27, 0.29, 0.31, 0.33, 0.36, 0.39, 0.41, 0.43, 0.44, 0.45, 0.45]
)  # fmt: skip
#: Uncontrolled home EV charging (1.0 = evening peak), hour 0..23: arrivals from 16 h.
EV_SHAPE = np.array(
    [0.35, 0.25, 0.15, 0.10, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05,
     0.05, 0.05, 0.05, 0.10, 0.25, 0.55, 0.85, 1.00, 0.95, 0.80, 0.60, 0.45]
)  # fmt: skip

SIMBENCH_YEAR = 2016
EV_LOAD_TYPE = "ev_charging"
ELEMENTS = ("load", "sgen", "storage")


@settings("scenario")
class Scenario:
    """Which periods to simulate and the growth assumptions applied to the grid.

    `days` are ISO dates of the SimBench profile year (ignored by synthetic grids, which
    have one synthetic day); `hours` are the hours of each day that become periods.
    """

    days: tuple[Text, ...] = ()
    hours: Annotated[tuple[Annotated[Int, Field(ge=0, le=23)], ...],
                     Field(min_length=1)] = tuple(range(24))
    load_scale: Annotated[Float, Field(ge=0)] = 1.0
    pv_scale: Annotated[Float, Field(ge=0)] = 1.0
    wind_scale: Annotated[Float, Field(ge=0)] = 1.0
    ev_peak_mw: Annotated[Float, Field(ge=0)] = 0.0
    period_hours: Annotated[Float, Field(gt=0, le=24)] = 1.0
    source: Text = field(default="scenario", compare=False)

    def __post_init__(self) -> None:
        if len(set(self.hours)) != len(self.hours):
            raise InputError(f"hours repeat: {list(self.hours)}", source=self.source,
                             field="scenario.hours")
        for day in self.days:
            parse_day(day, self.source)

    @property
    def n_periods(self) -> int:
        """Periods per simulated day."""
        return len(self.hours)

    @classmethod
    def from_dict(cls, data: Mapping[str, object], source: str = "scenario",
                  base: Scenario | None = None) -> Scenario:
        """Build from a TOML table, on top of `base` (a grid's default) if given."""
        if "source" in data:
            raise InputError("unknown field 'source'", source=source, field="scenario.source")
        # one day or hour may be written without brackets
        values = {key: [value] if key in ("days", "hours") and isinstance(value, str | int)
                  else value for key, value in data.items()}
        start = asdict(base) if base is not None else {}
        return build(cls, values, source, {**start, "source": source})


def parse_day(day: str, source: str = "scenario") -> dt.date:
    """Parse an ISO date of the SimBench profile year, with a clear error otherwise."""
    try:
        date = dt.date.fromisoformat(str(day))
    except ValueError:
        raise InputError(f"day {day!r} is not an ISO date (YYYY-MM-DD)",
                         source=source, field="scenario.days") from None
    if date.year != SIMBENCH_YEAR:
        raise InputError(f"day {day!r} is outside the profile year {SIMBENCH_YEAR}",
                         source=source, field="scenario.days")
    return date


def sgen_kind(sgen_type: object) -> str:
    """Classify a static generator as 'pv', 'wind' or 'other' from its pandapower type.

    SimBench 'lv_RES' units are the aggregated rooftop renewables of an LV grid,
    overwhelmingly PV, so they count as PV for scaling and for PV inverter agents.
    """
    text = str(sgen_type).lower()
    if "pv" in text or text == "lv_res":
        return "pv"
    if "wp" in text or "wind" in text or "wka" in text:
        return "wind"
    return "other"


def sgen_kinds(sgen: pd.DataFrame) -> np.ndarray:
    """`sgen_kind` of every row of an sgen table ('other' where the type is missing)."""
    if "type" not in sgen:
        return np.full(len(sgen), "other")
    return sgen["type"].map(sgen_kind).to_numpy()


def is_simbench(net: pp.pandapowerNet) -> bool:
    """True for built-in SimBench nets, whose yearly profiles drive the scenario."""
    return bool(net.get("simbench_code"))


def store_reference(net: pp.pandapowerNet) -> None:
    """Remember the element values that scenarios scale (peak load, rated generation).

    Scenarios overwrite p_mw/q_mvar period by period, so the reference must be kept
    apart; otherwise a second scenario would compound on the first one's last period.
    """
    net.lfm_reference = {el: net[el][["p_mw", "q_mvar"]].copy() for el in ELEMENTS}


def reference(net: pp.pandapowerNet, element: str) -> pd.DataFrame:
    """Reference p_mw/q_mvar of every row of an element table (snapshot taken if missing)."""
    if "lfm_reference" not in net:
        store_reference(net)
    ref = net.lfm_reference[element]
    missing = net[element].index.difference(ref.index)
    if len(missing):
        ref = pd.concat([ref, net[element].loc[missing, ["p_mw", "q_mvar"]]])
        net.lfm_reference[element] = ref
    return ref.loc[net[element].index]


def of_type(table: pd.DataFrame, kind: str) -> pd.Series:
    """True for the rows of an element table whose pandapower `type` is `kind`.

    The project marks the rows it adds by type (EV charging, the market's flexibility
    injections, day-ahead schedules); a table without a `type` column has none.
    """
    if "type" not in table:
        return pd.Series(False, index=table.index)
    return table["type"] == kind


def _is_ev(loads: pd.DataFrame) -> np.ndarray:
    return of_type(loads, EV_LOAD_TYPE).to_numpy()


def ev_load_buses(net: pp.pandapowerNet) -> pd.Series:
    """Reference load per bus that receives EV charging (MW), LV busbars of trafos excluded."""
    ref = reference(net, "load")
    loads = net.load.assign(p_ref=ref.p_mw)[~_is_ev(net.load) & net.load.in_service.to_numpy()]
    busbars = set(net.trafo.lv_bus) if len(net.trafo) else set()
    loads = loads[~loads.bus.isin(busbars) & (loads.p_ref > 0)]
    return loads.groupby("bus").p_ref.sum()


def add_ev_loads(net: pp.pandapowerNet, ev_peak_mw: float) -> None:
    """Add (or resize) one EV charging load per eligible bus; total = `ev_peak_mw` at peak.

    The EV loads' reference value is their peak charging power.
    """
    reference(net, "load")
    existing = net.load.index[_is_ev(net.load)]
    if len(existing):
        net.load.drop(existing, inplace=True)
        net.lfm_reference["load"] = net.lfm_reference["load"].drop(existing, errors="ignore")
    if ev_peak_mw <= 0:
        return
    weights = ev_load_buses(net)
    if weights.sum() <= 0:
        raise InputError("the grid has no load buses to place EV charging on",
                         field="scenario.ev_peak_mw")
    for bus, weight in weights.items():
        index = pp.create_load(net, bus=int(bus), p_mw=ev_peak_mw * weight / weights.sum(),
                               q_mvar=0.0, name=f"EV charging {bus}", type=EV_LOAD_TYPE)
        net.lfm_reference["load"].loc[index] = net.load.loc[index, ["p_mw", "q_mvar"]]


@dataclass(frozen=True)
class PeriodInjections:
    """Per-period element set-points: for each element table a (periods x elements) frame.

    `taps`: tap position of transformers per period (periods x trafo ids), where the
    DSO moves its tap changers (`network.taps`); None keeps the grid's positions.
    """

    labels: tuple[str, ...]
    hours: tuple[int, ...]
    p_mw: dict[str, pd.DataFrame]
    q_mvar: dict[str, pd.DataFrame]
    taps: pd.DataFrame | None = None

    def apply(self, net: pp.pandapowerNet, period: int) -> None:
        """Write period `period`'s set-points into the net's element tables.

        Rows added to the net later (e.g. the market's flexibility injections) keep
        their own values.
        """
        for element in ELEMENTS:
            if element in self.p_mw and len(self.p_mw[element].columns):
                p, q = self.p_mw[element], self.q_mvar[element]
                net[element].loc[p.columns, "p_mw"] = p.iloc[period].to_numpy()
                net[element].loc[q.columns, "q_mvar"] = q.iloc[period].to_numpy()
        if self.taps is not None:
            net.trafo.loc[self.taps.columns, "tap_pos"] = self.taps.iloc[period].to_numpy()

    def tap_key(self, period: int) -> tuple:
        """The transformer taps of a period, hashable (empty when the grid's are kept)."""
        return () if self.taps is None else tuple(self.taps.iloc[period].tolist())


def period_injections(net: pp.pandapowerNet, scenario: Scenario,
                      day: str | None = None) -> PeriodInjections:
    """Per-period p/q set-points of every load, sgen and storage for one day of the scenario.

    Adds the scenario's EV charging loads to `net` (in place) so that the returned
    tables line up with the net's element tables.
    """
    if is_simbench(net):
        day = day or (scenario.days[0] if scenario.days else None)
        if day is None:
            raise InputError("a SimBench grid needs a day", source=scenario.source, field="days")
        return days_injections(net, scenario, [day])
    add_ev_loads(net, scenario.ev_peak_mw)
    return _scaled(net, scenario, _synthetic_hourly(net, scenario.hours),
                   tuple(f"h{h:02d}" for h in scenario.hours), tuple(scenario.hours))


def days_injections(net: pp.pandapowerNet, scenario: Scenario,
                    days: list[str]) -> PeriodInjections:
    """`period_injections` of several days of a SimBench grid at once: day after day.

    One slice of the year's profiles instead of one per day: a scan of the whole year
    (`network.year`) builds its 8,784 periods in a fraction of a second.
    """
    add_ev_loads(net, scenario.ev_peak_mw)
    dates = [parse_day(day, scenario.source) for day in days]
    labels = tuple(f"{day} {h:02d}:00" for day in days for h in scenario.hours)
    return _scaled(net, scenario, _simbench_hourly(net, dates, scenario.hours), labels,
                   tuple(scenario.hours) * len(days))


def _scaled(net: pp.pandapowerNet, scenario: Scenario, shapes: dict,
            labels: tuple[str, ...], hours: tuple[int, ...]) -> PeriodInjections:
    """The hourly element values times the scenario's growth factors."""
    p, q = {}, {}
    for element in ELEMENTS:
        if element not in shapes:
            continue
        factor = _scale_factors(net, element, scenario)
        p[element] = shapes[element][0] * factor
        q[element] = shapes[element][1] * factor
    return PeriodInjections(labels, hours, p, q)


def _scale_factors(net: pp.pandapowerNet, element: str, scenario: Scenario) -> np.ndarray:
    table = net[element]
    if element == "sgen":
        by_kind = {"pv": scenario.pv_scale, "wind": scenario.wind_scale, "other": 1.0}
        return np.array([by_kind[kind] for kind in sgen_kinds(table)], dtype=float)
    if element == "load":
        return np.where(_is_ev(table), 1.0, scenario.load_scale)
    # SimBench 2-sw storages are PV home systems (PV + battery) that only feed in.
    return np.full(len(table), scenario.pv_scale)


def _frame(values: np.ndarray, index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame(values, columns=index)


def _synthetic_hourly(net: pp.pandapowerNet, hours: tuple[int, ...]) -> dict:
    """Reference values times the synthetic shapes (EV loads follow EV_SHAPE)."""
    h = np.asarray(hours)
    out = {}
    load, ref = net.load, reference(net, "load")
    load_shape = np.where(_is_ev(load)[None, :], EV_SHAPE[h][:, None], LOAD_SHAPE[h][:, None])
    out["load"] = (_frame(load_shape * ref.p_mw.to_numpy(), load.index),
                   _frame(load_shape * ref.q_mvar.to_numpy(), load.index))
    sgen, ref = net.sgen, reference(net, "sgen")
    kinds = sgen_kinds(sgen)
    shape = np.ones((len(h), len(sgen)))
    shape[:, kinds == "pv"] = PV_SHAPE[h][:, None]
    shape[:, kinds == "wind"] = WIND_SHAPE[h][:, None]
    out["sgen"] = (_frame(shape * ref.p_mw.to_numpy(), sgen.index),
                   _frame(shape * ref.q_mvar.to_numpy(), sgen.index))
    if len(net.storage):
        zeros = np.zeros((len(h), len(net.storage)))
        out["storage"] = (_frame(zeros, net.storage.index), _frame(zeros, net.storage.index))
    return out


def _simbench_hourly(net: pp.pandapowerNet, dates: list[dt.date],
                     hours: tuple[int, ...]) -> dict:
    """Hourly means of SimBench's 15-min absolute profiles, day after day."""
    absolute = simbench_profiles(net.simbench_code)
    firsts = [(date - dt.date(SIMBENCH_YEAR, 1, 1)).days * 96 for date in dates]
    rows = np.array([first + 4 * h + k for first in firsts for h in hours for k in range(4)])
    periods = len(dates) * len(hours)

    def hourly(frame: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
        values = frame.to_numpy()[rows].reshape(periods, 4, -1).mean(axis=1)
        return _frame(values, frame.columns).reindex(columns=index, fill_value=0.0)

    out = {}
    load = net.load
    is_ev = _is_ev(load)
    lp = hourly(absolute[("load", "p_mw")], load.index)
    lq = hourly(absolute[("load", "q_mvar")], load.index)
    ev_shape = np.tile(EV_SHAPE[np.asarray(hours)], len(dates))
    ev_p = ev_shape[:, None] * reference(net, "load").p_mw.to_numpy()[None, :]
    lp.loc[:, is_ev] = ev_p[:, is_ev]
    lq.loc[:, is_ev] = 0.0
    out["load"] = (lp, lq)
    sgen_p = hourly(absolute[("sgen", "p_mw")], net.sgen.index)
    out["sgen"] = (sgen_p, _frame(np.zeros(sgen_p.shape), net.sgen.index))
    if len(net.storage):
        st_p = hourly(absolute[("storage", "p_mw")], net.storage.index)
        out["storage"] = (st_p, _frame(np.zeros(st_p.shape), net.storage.index))
    return out
