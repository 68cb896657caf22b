"""Which days of the year a study simulates, and how many days of the year each stands for.

A study's `[days]` table turns one extreme day into a year:

    [days]
    rule = "representative"   # or "needs": every day of the profile year with a need
    k = 6                     # representative days (tsam clusters of days)
    method = "hierarchical"   # or "kmeans" (then `seed` matters)
    representative = "mean-need"  # or "medoid": which day of a cluster stands for it
    seed = 0
    keep_worst = true         # the days of the year's extreme hours are kept, weight 1 each

Both rules start from the year scan (`network.year`): a day without any need costs
nothing in any design (the DSO buys nothing and no emergency action is needed), so only
days with needs are simulated. `needs` runs each of them (weight 1). `representative`
keeps the days of the year's extreme hours (highest loading, highest and lowest
voltage; `keep_worst`) with weight 1 each, clusters the other days on their hourly
congestion and voltage needs (`CLUSTERED`) with tsam (Kotzur et al.
2018, "Impact of different time series aggregation methods on optimal energy system
design", Renewable Energy 117: 474-87) and keeps one actual day per cluster, weighted by
its cluster's size: by default the day whose need (`MATCHED`) is nearest the cluster's
mean need, so that the weighted year keeps the clusters' need; `representative =
"medoid"` keeps tsam's medoid instead, the day nearest the others in shape, which in a
cluster of many small needs and a few large ones is a small one (on simbench-rural,
four medoid days gave 20 % of the year's emergency action). The weights sum to the
number of days with needs, so a weighted sum of per-day KPIs is a year's figure
(`results.annual`).

Each chosen day is learned on its own (rounds repeat that day); `resample_days` asks
another question: one strategy learned across many days.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.network.year import YearScan
from lfm_abm.schema import MAX_COUNT, Bool, Field, Int, settings

#: What the days are clustered on: each hour's congestion and voltage need. Clustering on
#: the loading and voltage levels instead missed semiurb's year of emergency action by
#: 22-54 % for k = 4..12 (medoids of level clusters have smaller needs than their
#: members); on the needs the miss is 0-7 % (`lfm-abm days`, docs/model.md 1.5).
CLUSTERED = ("cm_need", "vc_need")
#: What a cluster's representative day matches (`representative = "mean-need"`): the
#: cluster's mean daily sum of each hour's worst congestion and worst voltage excess.
#: Emergency action fixes the worst branch and bus, so on simbench-rural a day's MWh of
#: it correlates 0.97 with the worst voltage excess and 0.73 with the summed one.
MATCHED = ("cm_worst", "vc_worst")


@settings("days")
class DaysRule:
    """The [days] table of a study: how to choose days from the year's days with needs."""

    rule: Literal["needs", "representative"]
    k: Annotated[Int, Field(ge=1, le=366)] = 6
    method: Literal["hierarchical", "kmeans"] = "hierarchical"
    seed: Annotated[Int, Field(ge=0, le=MAX_COUNT)] = 0
    keep_worst: Bool = True
    representative: Literal["mean-need", "medoid"] = "mean-need"


@dataclass(frozen=True)
class ChosenDay:
    """A simulated day and the number of days of the year it stands for."""

    day: str
    weight: float


def choose_days(scan: YearScan, rule: DaysRule) -> list[ChosenDay]:
    """The days to simulate under `rule`, in calendar order, with their weights.

    The weights sum to the number of days with needs. A year without any need is an
    error: there is nothing for a market to do.
    """
    days = scan.need_days
    if not days:
        raise InputError("no day of the profile year has a need: there is nothing for a "
                         "market to do (raise the scenario's growth or tighten the limits)",
                         field="days.rule")
    if rule.rule == "needs" or rule.k >= len(days):
        return [ChosenDay(day, 1.0) for day in days]
    hourly = scan.hourly[scan.hourly.day.isin(days)]
    if hourly.day.nunique() < len(days):  # a day whose power flow failed has no profile
        raise InputError(f"{len(days) - hourly.day.nunique()} days with needs could not be "
                         "solved in AC, so they cannot be clustered; use rule = \"needs\"",
                         field="days.rule")
    return _representatives(hourly, days, rule)


def _representatives(hourly: pd.DataFrame, days: list[str],
                     rule: DaysRule) -> list[ChosenDay]:
    """The extreme days (weight 1 each), then tsam's medoids of the other days' clusters."""
    extremes = _extreme_days(hourly, days) if rule.keep_worst else set()
    clusters = rule.k - len(extremes)
    if clusters < 1:
        raise InputError(f"k = {rule.k} leaves no day besides the {len(extremes)} extreme "
                         "days keep_worst keeps", field="days.k",
                         allowed=[f"at least {len(extremes) + 1}", "keep_worst = false"])
    others = [day for day in days if day not in extremes]
    chosen = dict.fromkeys(extremes, 1.0)
    if clusters >= len(others):
        chosen.update(dict.fromkeys(others, 1.0))
    else:
        chosen.update(_cluster_days(hourly[hourly.day.isin(others)], others, clusters, rule))
    if sum(chosen.values()) != len(days):
        raise RuntimeError(f"the chosen days weigh {sum(chosen.values())}, not the "
                           f"{len(days)} days with needs")
    return [ChosenDay(day, chosen[day]) for day in sorted(chosen)]


def _cluster_days(hourly: pd.DataFrame, days: list[str], clusters: int,
                  rule: DaysRule) -> dict[str, float]:
    """One day per tsam cluster (`rule.representative`), weighed by the days in it."""
    import tsam

    series = hourly[list(CLUSTERED)].reset_index(drop=True)
    series.index = pd.date_range("2016-01-01", periods=len(series), freq="h")  # days end to end
    method = tsam.KMeans(random_state=rule.seed) if rule.method == "kmeans" else rule.method
    config = tsam.ClusterConfig(method=method, representation="medoid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tsam's notes on rescaling
        result = tsam.aggregate(series, clusters, period_duration=len(series) // len(days),
                                cluster=config)
    assignment = np.asarray(result.cluster_assignments)
    totals = _scaled_need_totals(hourly, days) if rule.representative == "mean-need" else None
    chosen: dict[str, float] = {}
    for cluster, medoid in enumerate(result.clustering.cluster_centers):
        inside = np.flatnonzero(assignment == cluster)
        if not len(inside):
            continue
        member = medoid if totals is None else _nearest_mean(totals, inside)
        day = days[member]  # two clusters with one representative day weigh as one
        chosen[day] = chosen.get(day, 0.0) + float(len(inside))
    return chosen


def _nearest_mean(totals: np.ndarray, inside: np.ndarray) -> int:
    """The member of `inside` whose `totals` row is nearest (Euclidean) their mean."""
    distance = ((totals[inside] - totals[inside].mean(axis=0)) ** 2).sum(axis=1)
    return int(inside[np.argmin(distance)])


def _scaled_need_totals(hourly: pd.DataFrame, days: list[str]) -> np.ndarray:
    """Each day's `MATCHED` sums over its hours, scaled by the largest day's.

    Scaled, CM (MVA h) and VC (p.u. h) weigh alike in the distance to a cluster's mean.
    """
    totals = hourly.groupby("day")[list(MATCHED)].sum().loc[days].to_numpy()
    return totals / np.maximum(totals.max(axis=0), 1e-12)


def _extreme_days(hourly: pd.DataFrame, days: list[str]) -> set[str]:
    """Days of the year's highest loading, highest voltage and lowest voltage hour."""
    at = hourly.reset_index(drop=True)
    return {at.day[at.loading_max.idxmax()], at.day[at.v_max.idxmax()],
            at.day[at.v_min.idxmin()]} & set(days)
