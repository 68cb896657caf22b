"""Day-ahead schedules on the grid: the MW providers moved, as load rows of their own.

A day-ahead stage (`market.dayahead`) moves what providers inject, per period and bus
(injection convention: + = more injection or less consumption). On the grid the move
is one load row per scheduled bus, typed SCHEDULE_TYPE, consuming minus the schedule
in every period: the day's AC power flows then solve the point after the day-ahead
market, and the needs the DSO publishes are that point's. The rows are the providers'
energy, not the grid's: the FSP inventory leaves them out (a provider claims a share of
what the forecast has at its bus), and the DSO's emergency action counts them as load
it can shed where they consume and as generation it can curtail where they inject.
"""

from __future__ import annotations

from dataclasses import replace

import pandapower as pp
import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.network.scenarios import PeriodInjections, of_type

#: pandapower load `type` of the day-ahead schedule rows.
SCHEDULE_TYPE = "dayahead_schedule"


def is_schedule(load: pd.DataFrame) -> pd.Series:
    """True for the load rows that carry a day-ahead schedule."""
    return of_type(load, SCHEDULE_TYPE)


def add_schedule(net: pp.pandapowerNet, injections: PeriodInjections,
                 schedule: pd.DataFrame) -> PeriodInjections:
    """Add a schedule row per bus of `schedule` to `net` (in place); return its injections.

    schedule: MW injected per period (rows, one per period of the day) and bus (columns).
    A bus that is not in the net, or a schedule of the wrong length, is an input error.
    """
    if len(schedule.index) != len(injections.labels):
        raise InputError(f"a schedule of {len(schedule.index)} periods for a day of "
                         f"{len(injections.labels)}", field="schedule",
                         allowed=[f"{len(injections.labels)} rows, one per period"])
    unknown = sorted(set(schedule.columns) - set(net.bus.index))
    if unknown:
        raise InputError(f"buses {unknown} are not in the grid", field="schedule",
                         allowed=["bus ids of the grid"])
    rows = [pp.create_load(net, bus=int(bus), p_mw=0.0, q_mvar=0.0,
                           name=f"day-ahead schedule {bus}", type=SCHEDULE_TYPE)
            for bus in schedule.columns]
    p = dict(injections.p_mw)
    q = dict(injections.q_mvar)
    consumption = pd.DataFrame(-schedule.to_numpy(dtype=float), index=p["load"].index,
                               columns=pd.Index(rows))
    p["load"] = pd.concat([p["load"], consumption], axis=1)
    q["load"] = pd.concat([q["load"], consumption * 0.0], axis=1)
    return replace(injections, p_mw=p, q_mvar=q)
