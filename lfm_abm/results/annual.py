"""A year's figures from a study's days: the weighted sum of per-day KPIs, per seed.

A study with a `[days]` rule runs each chosen day d as its own variant and records its
weight w_d, the number of days of the year it stands for (`days.choose_days`; days
without a need cost nothing in any design). For a per-day flow K (EUR or MWh per
round, a round being one day), the year's figure of one seed is

    K_year = sum_d w_d K_d    (EUR per year, MWh per year)

and the summary is its mean and 95 % CI over seeds (the same seed across days: one
draw of the learners' randomness per day). The cost of a MWh of need divides a year's
cost by the year's emergency action without a market, `unmet_need_no_market`.
A year is reported only where every chosen day has a finished run.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from lfm_abm.results.kpis import (
    draw_keys,
    formatted,
    learned_rows,
    paired,
    runs_mean_and_ci,
    setting_labels,
)

#: Per-day flows summed over the year: (name, label, unit of the year's figure).
ANNUAL = {
    "total_cost": ("total cost", "EUR per year"),
    "dso_cost": ("DSO cost", "EUR per year"),
    "unmet_cost_after_ac": ("emergency cost", "EUR per year"),
    "tap_cost": ("tap cost", "EUR per year"),
    "cost_no_market": ("no market", "EUR per year"),
    "cost_dso_alone": ("DSO alone", "EUR per year"),
    "unmet_need_after_ac": ("unmet need", "MWh per year"),
    "curtailed_after_ac": ("curtailed", "MWh per year"),
    "shed_after_ac": ("load shed", "MWh per year"),
    "unmet_need_no_market": ("unmet need, no market", "MWh per year"),
    "unmet_need_dso_alone": ("unmet need, DSO alone", "MWh per year"),
    "truthful_cost": ("truthful cost", "EUR per year"),
}
#: Costs per MWh of the year's need without a market: name -> (cost it divides, label).
PER_NEED = {"total_cost_per_need": ("total_cost", "total cost per need"),
            "dso_cost_per_need": ("dso_cost", "DSO cost per need"),
            "cost_dso_alone_per_need": ("cost_dso_alone", "DSO alone per need")}
PER_NEED_UNIT = "EUR per MWh of need without a market"
#: What the paired comparison of years reports.
ANNUAL_PAIRED = ("total_cost", "dso_cost", "unmet_need_after_ac")
#: A year's setting; each year is one draw of it (`kpis.draw_keys`: seed, population).
SETTING = ["design", "pricing", "learner", "variant"]
#: The column a [days] study adds to every run: its day. The days' weights are the
#: study's (manifest `study.days.chosen`), never a run's: a rerun with another rule
#: reuses the runs of the days it keeps, not their old weights.
DAY_COLUMNS = ("chosen_day",)
#: The days of each year: year variant label -> {day: days of the year it stands for}.
Chosen = Mapping[str, Mapping[str, float]]


def year_variant(label: str) -> str:
    """A day variant's label without its day: "day=2016-07-25,voll=300.0" -> "voll=300.0"."""
    if not label.startswith("day="):
        return label
    return label.partition(",")[2]


def chosen_days(study: Mapping) -> Chosen:
    """A study's days and weights per year variant ({} without [days])."""
    return (study.get("days") or {}).get("chosen") or {}


def heaviest_day(chosen: Chosen) -> str:
    """The day standing for most days (earliest of ties) of the first year variant."""
    weights = next(iter(chosen.values()))
    return min(weights, key=lambda day: (-weights[day], day))


def annual_runs(per_run: pd.DataFrame, chosen: Chosen) -> pd.DataFrame:
    """Per design x pricing x learner x variant (without day) x seed: the year's figures.

    `chosen`: the study's days and weights (`chosen_days`); empty for a study without
    [days], which has no year. Columns: the keys, `days`, the ANNUAL flows and PER_NEED
    ratios. A year needs a run of every chosen day: one missing a day is left out, and
    a flow that is NaN on any day (e.g. the DSO alone where its tap schedule failed) is
    NaN for the year, never counted as zero.
    """
    keys = [*SETTING, *draw_keys(per_run)]
    if not chosen or "chosen_day" not in per_run:
        return pd.DataFrame(columns=[*keys, "days", *ANNUAL, *PER_NEED])
    runs = per_run.assign(variant=per_run.variant.map(year_variant))
    weight = np.array([chosen.get(variant, {}).get(day, np.nan) for variant, day in
                       zip(runs.variant, runs.chosen_day, strict=True)])
    runs = runs[np.isfinite(weight)]  # a day the rule no longer chooses
    weight = weight[np.isfinite(weight)]
    flows = pd.DataFrame({name: runs[name].to_numpy(dtype=float) * weight for name in ANNUAL},
                         index=runs.index)
    grouped = pd.concat([runs[[*keys, "chosen_day"]], flows], axis=1).groupby(keys, sort=False)
    years = grouped[list(ANNUAL)].sum()
    years[grouped[list(ANNUAL)].count() < grouped.size().to_numpy()[:, None]] = np.nan
    years.insert(0, "days", grouped.chosen_day.nunique())
    years = years.reset_index()
    wanted = np.array([len(chosen[variant]) for variant in years.variant])
    years = years[years.days.to_numpy() == wanted]
    need = years.unmet_need_no_market.to_numpy(dtype=float)
    for name, (cost, _) in PER_NEED.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            years[name] = np.where(need > 0, years[cost].to_numpy(dtype=float) / need, np.nan)
    return years.reset_index(drop=True)


def annual_summary(years: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95 % CI of every year's figure (`<name>_mean`, `<name>_ci`).

    Over seeds, or over populations where the study draws several (`kpis.over_draws`).
    """
    rows = []
    for key, group in years.groupby(SETTING, sort=False, dropna=False):
        row: dict[str, object] = dict(zip(SETTING, key, strict=True))
        row["seeds"], row["days"] = len(group), int(group.days.iloc[0])
        for name in (*ANNUAL, *PER_NEED):
            row[f"{name}_mean"], row[f"{name}_ci"] = runs_mean_and_ci(group, name)
        rows.append(row)
    return pd.DataFrame(rows)


def annual_paired(years: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Each design's year minus the reference design's, on common seeds, with a 95 % CI."""
    return paired(years, reference, ANNUAL_PAIRED)


def annual_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The year per learned setting, 'mean ± ci': costs, unmet need, counterfactuals."""
    summary = learned_rows(summary)
    if summary.empty:
        return pd.DataFrame()
    out = pd.DataFrame({"setting": setting_labels(summary).to_numpy(),
                        "days": summary.days.to_numpy()})
    shown = {"total_cost": 0, "dso_cost": 0, "unmet_need_after_ac": 1,
             "cost_no_market": 0, "cost_dso_alone": 0, "total_cost_per_need": 1,
             "cost_dso_alone_per_need": 1}
    for name, digits in shown.items():
        label, unit = ANNUAL[name] if name in ANNUAL else (PER_NEED[name][1], PER_NEED_UNIT)
        out[f"{label} ({unit})"] = [formatted(m, c, digits) for m, c in zip(
            summary[f"{name}_mean"], summary[f"{name}_ci"], strict=True)]
    return out

