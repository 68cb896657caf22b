"""Seaborn figures of a study, rebuilt from saved results (never from a new simulation).

Each figure answers one question an energy economist asks of the study. Every figure
uses the same market order (the study's) and the same colour per market; summaries over
seeds are means with 95 % confidence intervals; "window" means the last `window` rounds
of each run (the learnt regime the KPIs describe).

* design_comparison.png: which design is cheapest and solves the needs? DSO cost (with
  the truthful benchmark), cost / truthful, unmet need and total cost per design, best
  (lowest total cost) at the top and outlined.
* markups_accepted.png: do FSPs learn to bid above cost where it pays? Volume-weighted
  markup of accepted bids vs round, per design and agent type.
* learning_profits.png: who earns while learning? Profit per FSP and round by agent type
  vs round, per design.
* cost_curves.png: does the cost settle, and how far above competitive? DSO cost per
  round (log) and its ratio to the truthful benchmark vs round.
* market_power.png: is there market power? Lerner index of accepted bids and HHI of the
  relief each need receives vs round.
* profits.png: how is the rent shared among FSPs? Distribution of mean profit per FSP
  and round over the window, per design and agent type.
* surplus_split.png: what does the DSO's total cost consist of? True cost of the
  accepted bids, FSP rent, curtailment compensation and VOLL x load shed per design.
* supply_stack.png: how is one need's local market cleared? Merit order of the bids and
  of their true costs in units of relief, first and last round (needs the offers table).
* locational_prices.png: what do accepted bids earn at their location? Locational
  prices of accepted bids per design and product over the window.
* awards_map.png: where is flexibility bought? Mean awarded energy per bus and round on
  the grid with the needs (needs bus coordinates).
* dayahead_curves.png (studies with a day-ahead stage): do providers learn inc-dec
  gaming? Inc-dec volume, the need it created and the DSO cost with balance energy per
  round.
* sweep_<column>.png: how do the results move with a swept parameter? Total cost, DSO
  cost and Lerner index vs its value, one line per design.
* learning.png: did they learn? Choice entropy and greedy-play share of the learners
  that earn in the window vs round, per design, against uniform random play.

Figures show the learned settings; the reference runs (random, truthful play) appear as
the yardstick where a figure compares with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, also on servers and CI

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lfm_abm.errors import InputError
from lfm_abm.files import atomic_file
from lfm_abm.market.bids import PRODUCTS
from lfm_abm.results import plot_data
from lfm_abm.results.annual import ANNUAL, DAY_COLUMNS, year_variant
from lfm_abm.results.kpis import (
    bounded_interval,
    ci_half_width,
    learned_rows,
    runs_mean_and_ci,
    setting_labels,
    varying_settings,
)
from lfm_abm.results.lazy import StudyTables
from lfm_abm.results.registry import AGENT_TYPES, ANY, KPIS
from lfm_abm.results.store import NetworkData

DPI = 110
#: What figures can be written as: png for screens, pdf and svg (vector) for papers.
FIGURE_FORMATS = ("png", "pdf", "svg")
#: The formats of the figures being made (`make_plots` sets them for its figures).
_FORMATS: ContextVar[tuple[str, ...]] = ContextVar("figure_formats", default=("png",))
AGENT_COLOURS = dict(zip(AGENT_TYPES, ("#e69f00", "#009e73", "#6a3d9a"), strict=True))
FAMILY_COLOURS = {"P": "tab:orange", "Q": "tab:blue"}
PRODUCT_COLOURS = dict(zip(PRODUCTS, ("#fdae61", "#d7301f", "#92c5de", "#2166ac"),
                           strict=True))
NEED_COLOUR = "tab:red"
#: Axis labels of commonly swept fields (others: the field's name).
SWEPT_AXES = {"voll": "VOLL (EUR/MWh)", "reservation_price": "reservation price (EUR/MWh)",
              "curtailment_price": "curtailment compensation (EUR/MWh)",
              "P_scale": "P cost factor (x true P costs)",
              "Q_scale": "Q cost factor (x true Q costs)"}
#: Panels of a one-panel-per-setting figure at most (the first settings in the study's
#: order; runs.csv and summary.csv hold them all): a thousand-run sweep stays readable.
MAX_PANELS = 16
SMOOTH = 5  # rounds in the moving average of the curves vs round (exploration is noisy)
COMPONENTS = {"true_cost": ("true cost of accepted bids", "#9ecae1"),
              "rent": ("FSP rent (profit)", "#de2d26"),
              "curtailment_cost": ("curtailment compensation", "#969696"),
              "shedding_cost": ("VOLL x load shed", "#252525"),
              "tap_cost": ("tap changer wear", "#fdae6b")}


#: Mean profit per round (EUR) below which an FSP earns nothing (LP round-off).
EARNS = 1e-6

# --- labels, order, colours ----------------------------------------------------------

def market_order(labels: Iterable[str], order: Sequence[str] | None) -> list[str]:
    """The labels present, in the study's order (labels it does not know sorted after)."""
    present = set(labels)
    known = [m for m in dict.fromkeys(order or ()) if m in present]
    return known + sorted(present - set(known))


def design_of(market: str) -> str:
    """The design of a market label (`setting_labels`: the design, then " / " settings)."""
    return market.split(" / ", 1)[0]


def palette(markets: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per design, in the study's order, the same in every figure and sweep.

    Markets of one design (other pricing, learner or swept value) share its colour;
    `line_styles` tells their lines apart.
    """
    designs = list(dict.fromkeys(design_of(m) for m in markets))
    name = "tab10" if len(designs) <= 10 else "husl"
    colour = dict(zip(designs, sns.color_palette(name, len(designs)), strict=True))
    return {m: colour[design_of(m)] for m in markets}


LINE_STYLES = ("-", "--", ":", "-.")


def line_styles(markets: Sequence[str]) -> dict[str, str]:
    """Solid for a design's first market, then dashed, dotted, dash-dotted (in order)."""
    seen: dict[str, int] = {}
    styles = {}
    for market in markets:
        k = seen.get(design_of(market), 0)
        seen[design_of(market)] = k + 1
        styles[market] = LINE_STYLES[k % len(LINE_STYLES)]
    return styles


def comparable_groups(per_run: pd.DataFrame, order: Sequence[str] | None = None
                      ) -> dict[str, list[str]]:
    """The markets (in the study's order) grouped by everything but the design.

    Designs compete only within one setting (the same pricing, learner and swept
    values): a cheaper assumption (a lower VOLL) is not a better design.
    """
    market = per_run["market"] if "market" in per_run else setting_labels(per_run)
    context = setting_labels(per_run.assign(design=""), varying_settings(per_run))
    context_of = dict(zip(market, context, strict=True))
    groups: dict[str, list[str]] = {}
    for name in market_order(market, order):
        groups.setdefault(context_of[name], []).append(name)
    return groups


def order_by_total_cost(per_run: pd.DataFrame, order: Sequence[str] | None = None
                        ) -> list[str]:
    """Markets from lowest to highest mean total cost within each comparable group.

    Groups (`comparable_groups`) follow the study's order; ties and NaN keep it too.
    """
    market = per_run["market"] if "market" in per_run else setting_labels(per_run)
    cost = per_run.total_cost.groupby(market).mean()
    return [name for members in comparable_groups(per_run, order).values()
            for name in cost.reindex(members).sort_values(kind="stable",
                                                          na_position="last").index]


def best_of_groups(per_run: pd.DataFrame, ranked: Sequence[str]) -> set[str]:
    """The cheapest market of each comparable group (`ranked` by `order_by_total_cost`)."""
    return {next(name for name in ranked if name in members)
            for members in comparable_groups(per_run, ranked).values()}


def _panels_note(settings: int) -> str:
    """What a capped one-panel-per-setting figure leaves out ('' when nothing)."""
    return (f"; the first {MAX_PANELS} of {settings} settings (all in runs.csv)"
            if settings > MAX_PANELS else "")


def _decimals(value: float) -> int:
    """Decimals a number of this size is read with: 0 from 100 on, 2 from 1, else 3."""
    return 0 if abs(value) >= 100 else 2 if abs(value) >= 1 or value == 0 else 3


def _fmt(value: float, decimals: int | None = None) -> str:
    """A number as an economist reads it: thousands separated, few decimals."""
    if not np.isfinite(value):
        return "n/a"
    return f"{value:,.{_decimals(value) if decimals is None else decimals}f}"


def _fmt_sum(total: float, parts: Sequence[float]) -> str:
    """"total = a + b + ...", every number with the decimals of the total (one precision)."""
    decimals = _decimals(total)
    return f"{_fmt(total, decimals)} = " + " + ".join(_fmt(p, decimals) for p in parts)


def _short(value: float, _: object = None) -> str:
    """An axis tick written short: 500, 2k, 10k, 1.5M."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _save(fig: Figure, path: Path) -> Path:
    """Write (atomically) and close a figure (many figures per study: none kept in memory).

    Written in each of the formats `make_plots` was asked for; returns the first file.
    """
    formats = _FORMATS.get()
    try:
        for fmt in formats:
            with atomic_file(path.with_suffix(f".{fmt}")) as tmp:
                fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path.with_suffix(f".{formats[0]}")


# --- window and summaries --------------------------------------------------------------

def _mean_ci(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean and 95 % CI of `column` per market, cut at its bounds (as the summary).

    Over seeds, or over populations where the study draws several (`kpis.over_draws`).
    """
    rows = {}
    for market, group in frame.groupby("market"):
        mean, ci = runs_mean_and_ci(group, column)
        rows[market] = (mean, *bounded_interval(mean, 0.0 if np.isnan(ci) else ci,
                                                KPIS[column].bounds))
    return pd.DataFrame(rows, index=["mean", "lo", "hi"]).T


# --- 1. design comparison ------------------------------------------------------------

def _bar_panel(ax: Axes, summary: pd.DataFrame, colours: dict, best: set[str],
               log: bool) -> None:
    """Horizontal bars with CI and the mean written beside them; the best ones outlined."""
    markets = summary.index.tolist()
    y = np.arange(len(markets))
    mean = summary["mean"].to_numpy(float)
    below = np.nan_to_num(mean - summary["lo"].to_numpy(float))
    ci = np.nan_to_num(summary["hi"].to_numpy(float) - mean)
    lower = np.minimum(below, 0.9 * mean) if log else below  # a log axis has no room at 0
    ax.barh(y, mean, xerr=[lower, ci], color=[colours[m] for m in markets],
            edgecolor=["black" if m in best else "none" for m in markets],
            linewidth=2.0, error_kw={"elinewidth": 1, "capsize": 2})
    end = np.nan_to_num(mean + ci)
    for yi, (value, x) in enumerate(zip(mean, end, strict=True)):
        ax.text(x * 1.15 if log else x + 0.02 * max(end.max(), 1e-9), yi, _fmt(value),
                va="center", fontsize=8, fontweight="bold" if markets[yi] in best else None)
    if log:
        ax.set_xscale("log")
        positive = mean[mean > 0]
        ax.set_xlim(positive.min() / 2 if len(positive) else 1, max(end.max(), 1) * 6)
        # decades only, written short: 1e2 to 1e5 on a panel a quarter wide do not overlap
        ax.xaxis.set_major_locator(ticker.LogLocator(numticks=5))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(_short))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    else:
        ax.set_xlim(0, max(end.max(), 1e-9) * 1.25)


#: The design comparison's panels: (KPI, title, log axis).
DAY_PANELS = (("dso_cost", "What the DSO pays FSPs (log)", True),
              ("cost_ratio", "Overpayment vs competitive bids", False),
              ("unmet_need_after_ac", "Needs left to emergency action", False),
              ("total_cost", "Total cost = payments + emergency action (log)", True))
YEAR_PANELS = tuple(panel for panel in DAY_PANELS if panel[0] != "cost_ratio")


def design_comparison(per_run: pd.DataFrame, ranked: list[str], colours: dict, path: Path,
                      over: str, panels: Sequence[tuple[str, str, bool]] = DAY_PANELS,
                      axis_labels: Mapping[str, str] | None = None) -> Path:
    """Which design is cheapest and solves the needs: the KPIs, best design on top.

    One row per run of `per_run` (a run's window, or a seed's year: `over` says which,
    for the title); `axis_labels` replace the registry's (per round) where given.
    """
    best = best_of_groups(per_run, ranked)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 0.45 * len(ranked) + 2),
                             sharey=True)
    axis_of = {}
    for ax, (column, title, log) in zip(axes, panels, strict=True):
        _bar_panel(ax, _mean_ci(per_run, column).reindex(ranked), colours, best, log)
        label = (axis_labels or {}).get(column, KPIS[column].axis_label)
        ax.set(xlabel=label, title=title)
        ax.grid(axis="y", visible=False)
        axis_of[column] = ax
    y = np.arange(len(ranked))
    truthful = per_run.groupby("market").truthful_cost.mean().reindex(ranked)
    axis_of["dso_cost"].scatter(truthful, y, marker="D", color="black", s=22, zorder=5,
                                label="truthful benchmark")
    axis_of["dso_cost"].legend(fontsize=8, loc="lower right")
    if "cost_ratio" in axis_of:
        axis_of["cost_ratio"].axvline(1.0, color="black", linestyle="--", linewidth=1,
                                      label="competitive")
        axis_of["cost_ratio"].legend(fontsize=8, loc="lower right")
    counterfactuals = (("cost_no_market", "no market (emergency only)", "0.55"),
                       ("cost_dso_alone", "DSO alone (taps + emergency)", "black"))
    drawn = [c for c in counterfactuals if c[0] in per_run]  # what a market must beat
    total = axis_of["total_cost"]
    for column, label, colour in drawn:
        alone = per_run.groupby("market")[column].mean().reindex(ranked)
        total.scatter(alone, y, marker="|", color=colour, s=300, linewidths=2, zorder=5,
                      label=label)
        if total.get_xscale() == "log" and (alone > 0).any():  # keep the marks in sight
            total.set_xlim(left=min(total.get_xlim()[0], 0.7 * alone[alone > 0].min()))
    height = fig.get_size_inches()[1]
    if drawn:  # below the figure: inside an axis it would hide the dearest designs' bars
        fig.legend(*total.get_legend_handles_labels(), loc="lower center", fontsize=8, ncol=2,
                   frameon=False)
    axes[0].set_yticks(y, ranked)
    axes[0].invert_yaxis()  # best (lowest total cost) at the top of each group
    for label in axes[0].get_yticklabels():
        label.set_fontweight("bold" if label.get_text() in best else "normal")
    groups = comparable_groups(per_run, ranked)
    edges = np.cumsum([len(members) for members in groups.values()])[:-1] - 0.5
    for ax in axes:  # a line between settings: designs compete only within one
        for edge in edges:
            ax.axhline(edge, color="grey", linewidth=0.8)
    runs = per_run.groupby("market").size().min()
    populations = per_run.population.nunique() if "population" in per_run else 1
    draws = (f"{runs} seeds" if populations < 2 else
             f"{populations} populations of {runs // populations} seeds")
    within = " within each setting" if len(groups) > 1 else ""
    fig.suptitle(f"Which design is cheapest and solves the needs? Ranked by total cost"
                 f"{within}, best outlined (mean and 95 % CI over {draws}, {over})")
    fig.tight_layout(rect=(0, 0.3 / height if drawn else 0, 1, 1))
    return _save(fig, path)


def year_comparison(years: pd.DataFrame, order: Sequence[str] | None, path: Path) -> Path:
    """The design comparison over a year (a [days] study): seeds' sums of weighted days."""
    years = years.assign(market=setting_labels(years, varying_settings(years)))
    markets = market_order(years.market, [year_variant_market(m) for m in order or ()])
    labels = {name: f"{label} ({unit})" for name, (label, unit) in ANNUAL.items()}
    return design_comparison(years, order_by_total_cost(years, markets), palette(markets),
                             path, "a year of weighted days", YEAR_PANELS, labels)


def year_variant_market(market: str) -> str:
    """A day market's label without its day (the label of its year)."""
    design, _, setting = market.partition(" / ")
    parts = [part if not part.startswith("day=") else year_variant(part)
             for part in setting.split(" / ")] if setting else []
    return " / ".join([design, *(part for part in parts if part)])


# --- 2./3. learning curves by agent type -------------------------------------------

def smooth(frame: pd.DataFrame, y: str, keys: Sequence[str]) -> pd.DataFrame:
    """Trailing moving average of `y` over SMOOTH points per curve: trends over noise."""
    frame = frame.sort_values("round")
    moving = frame.groupby(list(keys))[y].transform(
        lambda s: s.rolling(SMOOTH, min_periods=1).mean())
    return frame.assign(**{y: moving})


def smoothed_markups(tables: StudyTables) -> pd.DataFrame:
    """Accepted bids' volume-weighted markup per run, round, type and family, smoothed."""
    return smooth(plot_data.accepted_markups(tables), "markup", ["run_id", "curve"])


def smoothed_profits(tables: StudyTables) -> pd.DataFrame:
    """Mean profit per FSP and round per run and agent type, smoothed."""
    return smooth(plot_data.profit_per_fsp(tables), "profit", ["run_id", "fsp_type"])


def smoothing(tables: StudyTables) -> str:
    """How the curves vs round are smoothed (and binned, in long runs), for titles."""
    width = plot_data.bin_width(tables)
    return (f"{SMOOTH}-round moving average" if width == 1
            else f"moving average of {SMOOTH} means of {width} rounds")


def _over_seeds(data: pd.DataFrame, y: str, key: str, x: str = "round") -> pd.DataFrame:
    """Mean and 95 % Student-t CI half-width over runs (seeds) of `y` per key and `x`.

    Computed directly, as in the summary, rather than by seaborn's bootstrap: the same
    interval everywhere, and fast on long runs.
    """
    agg = data.groupby([key, x])[y].agg(["mean", "std", "count"]).reset_index()
    return agg.assign(ci=np.nan_to_num(ci_half_width(agg["std"], agg["count"])))


def _curves(ax: Axes, data: pd.DataFrame, y: str, key: str, order: Sequence[str],
            colours: dict, x: str = "round", marker: str | None = None,
            styles: dict | None = None) -> pd.DataFrame:
    """One line per value of `key` with its CI band vs `x`; returns what it drew."""
    summary = _over_seeds(data, y, key, x)
    low, high = KPIS[y].bounds if y in KPIS else ANY  # bands stay where values can be
    for name in order:
        line = summary[summary[key] == name]
        if not len(line):
            continue
        ax.plot(line[x], line["mean"], color=colours[name], label=name, linewidth=1,
                marker=marker, linestyle=(styles or {}).get(name, "-"))
        ax.fill_between(line[x], np.clip(line["mean"] - line.ci, low, high),
                        np.clip(line["mean"] + line.ci, low, high),
                        color=colours[name], alpha=0.2, linewidth=0)
    return summary


def _type_curves(data: pd.DataFrame, y: str, markets: list[str], ylabel: str, title: str,
                 note: str, path: Path) -> Path:
    """One panel per market, one line per agent type (mean and CI over seeds) vs round."""
    key = "curve" if "curve" in data else "fsp_type"  # type, or type and family
    curves = [c for t in AGENT_TYPES for c in (t, f"{t} P", f"{t} Q") if c in set(data[key])]
    colours = {c: AGENT_COLOURS[c.split()[0]] for c in curves}
    styles = {c: "--" if c.endswith(" Q") else "-" for c in curves}
    present = [m for m in markets if m in set(data.market)]
    shown = present[:MAX_PANELS]
    columns = min(4, len(shown))
    rows = -(-len(shown) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.8 * rows),
                             squeeze=False, sharex=True)
    for ax, market in zip(axes.ravel(), shown, strict=False):
        drawn = _curves(ax, data[data.market == market], y, key, curves, colours, styles=styles)
        low, high = drawn["mean"].min(), drawn["mean"].max()
        pad = 0.15 * max(high - low, 0.1 * abs(high), 1e-9)
        ax.set_ylim(low - pad, high + pad)  # the means decide: rounds won by one seed only
        ax.set(title=market, xlabel="round")  # have wide t intervals
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    fig.supylabel(ylabel)
    fig.suptitle(f"{title}\n(mean and 95 % CI over seeds, {note}"
                 f"{_panels_note(len(present))})")
    fig.tight_layout()
    handles = [Line2D([], [], color=colours[c], linestyle=styles[c], label=c) for c in curves]
    fig.legend(handles=handles, title="agent type (and product family)", loc="upper center",
               bbox_to_anchor=(0.5, 0.0), ncols=len(curves), fontsize=8)
    return _save(fig, path)


# --- 4./5. cost and market power vs round ---------------------------------------------

def _market_lines(ax: Axes, data: pd.DataFrame, y: str, markets: list[str],
                  colours: dict) -> None:
    """One line per market (mean and 95 % CI over seeds, moving average) vs round."""
    _curves(ax, smooth(data, y, ["run_id"]), y, "market", markets, colours,
            styles=line_styles(markets))
    ax.set_xlabel("round")


def _legend_below(fig: Figure, ax: Axes, title: str) -> None:
    """Move an axes' legend below the figure, one row: it then hides no curve."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, title=title, loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncols=min(len(labels), 8), fontsize=8)


def cost_curves(data: pd.DataFrame, markets: list[str], colours: dict, note: str,
                path: Path) -> Path:
    """Does the cost settle, and how far above competitive: DSO cost and cost / truthful.

    `data`: per market, run and round the mean dso_cost and cost_ratio of ok rounds.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), sharex=True)
    _market_lines(left, data, "dso_cost", markets, colours)
    left.set(yscale="log", ylabel=KPIS["dso_cost"].axis_label, title="DSO cost per round (log)")
    _market_lines(right, data, "cost_ratio", markets, colours)
    right.axhline(1.0, color="black", linestyle="--", linewidth=1)
    right.set(ylabel=KPIS["cost_ratio"].axis_label,
              title="Cost relative to truthful bidding (dashed = competitive)")
    fig.suptitle(f"Cost curves by design (mean and 95 % CI over seeds, {note})")
    fig.tight_layout()
    _legend_below(fig, left, "design")
    return _save(fig, path)


#: Columns of the day-ahead curves: a run with a day-ahead stage records them.
DAYAHEAD_CURVES = ("inc_dec_mwh", "need_created", "dso_cost_with_energy")


def dayahead_curves(data: pd.DataFrame, markets: list[str], colours: dict, note: str,
                    path: Path) -> Path:
    """Do providers learn inc-dec gaming, and what does the DSO pay for it, over rounds.

    `data`: per market, run and round the mean inc-dec volume, created need and DSO cost
    with the balance energy (`DAYAHEAD_CURVES`) of ok rounds.
    """
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), sharex=True)
    titles = ("Energy scheduled day-ahead and reversed", "Need the schedules created",
              "DSO cost with balance energy")
    for ax, column, title in zip(axes, DAYAHEAD_CURVES, titles, strict=True):
        _market_lines(ax, data, column, markets, colours)
        ax.set(ylabel=KPIS[column].axis_label, title=title)
    fig.suptitle(f"Inc-dec gaming by design and setting (mean and 95 % CI over seeds, {note})")
    fig.tight_layout()
    _legend_below(fig, axes[0], "design")
    return _save(fig, path)


def learning(data: pd.DataFrame, window: int, markets: list[str], colours: dict,
             n_actions: int, note: str, path: Path) -> Path:
    """Did they learn: earners' choice entropy and greedy play vs round, vs random play.

    `data`: `plot_data.learning_per_round`.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), sharex=True)
    _market_lines(left, data, "entropy", markets, colours)
    left.axhline(1.0, color="black", linestyle="--", linewidth=1)
    left.set(ylim=(-0.02, 1.05), ylabel="normalised choice entropy (1 = uniform)",
             title="How spread is their choice? (dashed: random play)")
    _market_lines(right, data, "played_greedy", markets, colours)
    right.axhline(1.0 / n_actions, color="black", linestyle="--", linewidth=1)
    right.set(ylim=(-0.02, 1.05), ylabel="share playing the action believed best",
              title="Do they play what they learned? (dashed: random play, 1/N)")
    fig.suptitle(f"Did they learn? Learners that earn in the last {window} rounds (mean and "
                 f"95 % CI over seeds, {note})")
    fig.tight_layout()
    _legend_below(fig, left, "design")
    return _save(fig, path)


def market_power(lerner: pd.DataFrame, hhi: pd.DataFrame, markets: list[str],
                 colours: dict, note: str, path: Path) -> Path:
    """Is there market power: Lerner index of accepted bids and HHI per need vs round."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), sharex=True)
    _market_lines(left, lerner, "lerner", markets, colours)
    left.set(ylabel=f"{KPIS['lerner'].label} of accepted bids ((price - cost) / price)",
             title="Margin over true cost (0 = competitive, 1 = all rent)")
    _market_lines(right, hhi, "hhi", markets, colours)
    right.axhline(10_000, color="black", linestyle=":", linewidth=1)
    right.set(ylabel=KPIS["hhi"].axis_label,
              title="Concentration of each need's relief (10 000 = one FSP)")
    fig.suptitle(f"Market power by design (mean and 95 % CI over seeds, {note})")
    fig.tight_layout()
    _legend_below(fig, left, "design")
    return _save(fig, path)


# --- 6./7. rent over the window ----------------------------------------------------

def profits(data: pd.DataFrame, window: int, markets: list[str], path: Path) -> Path:
    """How the rent is shared: distribution of FSP profits per design and agent type.

    `data`: `plot_data.window_profits`.
    """
    types = [t for t in AGENT_TYPES if t in set(data.fsp_type)]
    order = [m for m in markets if m in set(data.market)]
    earners = data[data.profit > EARNS]
    fig, ax = plt.subplots(figsize=(11, 0.6 * len(order) + 2))
    common = {"data": earners, "x": "profit", "y": "market", "hue": "fsp_type",
              "order": order, "hue_order": types, "palette": AGENT_COLOURS, "ax": ax}
    if len(earners):
        sns.boxplot(**common, showfliers=False, boxprops={"alpha": 0.45}, linewidth=0.8,
                    log_scale=True)
        sns.stripplot(**common, dodge=True, size=2.5, alpha=0.7, legend=False, jitter=0.25)
    else:
        ax.set(xscale="log", xlim=(1, 10), yticks=range(len(order)), yticklabels=order)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(_short))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    nothing = (data.profit <= EARNS).groupby(data.market).agg(["sum", "size"])
    for yi, market in enumerate(order):  # who earns nothing is not on a log axis: say it
        count, size = nothing.loc[market]
        ax.annotate(f"{count} of {size} earn nothing", (1.0, yi), xycoords=("axes fraction",
                    "data"), xytext=(4, 0), textcoords="offset points", va="center",
                    fontsize=8)
    ax.set(xlabel="mean profit per FSP and round (EUR per round, log; FSPs that earn)",
           ylabel="")
    if len(earners):
        ax.legend(title="agent type", fontsize=8, loc="lower left")
    fig.suptitle(f"Who earns the rent? Profit per FSP over the last {window} rounds "
                 "(one dot per FSP and seed)")
    fig.tight_layout()
    return _save(fig, path)


def cost_components(costs: pd.DataFrame, per_run: pd.DataFrame) -> pd.DataFrame:
    """Per market, the mean over seeds of true cost, FSP rent and emergency cost per round.

    Emergency cost comes in its two kinds: curtailment compensation and VOLL x load shed;
    the tap moves of a design with the DSO's tap changer cost their wear (0 without).

    `costs`: per run, true cost and rent per round of the window (`plot_data.window_costs`).
    """
    sums = costs.set_index("run_id").reindex(per_run.run_id)
    runs = pd.DataFrame({"market": per_run.market.to_numpy(),
                         "true_cost": sums.true_cost.fillna(0.0).to_numpy(),
                         "rent": sums.rent.fillna(0.0).to_numpy(),
                         **{name: per_run[f"{name}_after_ac"].fillna(0.0).to_numpy()
                            for name in ("curtailment_cost", "shedding_cost")},
                         "tap_cost": per_run.get("tap_cost", pd.Series(0.0, index=per_run.index)
                                                 ).fillna(0.0).to_numpy()})
    return runs.groupby("market")[list(COMPONENTS)].mean()


def surplus_split(costs: pd.DataFrame, per_run: pd.DataFrame, window: int, ranked: list[str],
                  path: Path) -> Path:
    """What the DSO's total cost consists of: absolute (EUR per round) and shares."""
    parts = cost_components(costs, per_run).reindex(ranked)
    total = parts.sum(axis=1)
    shares = parts.div(total.where(total > 0), axis=0) * 100
    y = np.arange(len(ranked))
    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 0.45 * len(ranked) + 2.2),
                                      sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    for name, (label, colour) in COMPONENTS.items():
        start = parts.loc[:, :name].sum(axis=1) - parts[name]
        left.barh(y, parts[name], left=start, color=colour, label=label)
        right.barh(y, shares[name], left=shares.loc[:, :name].sum(axis=1) - shares[name],
                   color=colour)
    for yi, market in enumerate(ranked):
        row = parts.loc[market]
        left.text(total[market] + 0.01 * total.max(), yi, _fmt_sum(total[market], row.tolist()),
                  va="center", fontsize=8)
    left.set_xlim(0, total.max() * 1.6)
    left.set(xlabel="EUR per round (text: total = true cost + rent + curtailment + shedding"
                    " + tap wear)",
             title="Composition of the total cost")
    right.set(xlabel="share of the total cost (%)", xlim=(0, 100),
              title="Shares: small components stay visible")
    left.set_yticks(y, ranked)
    left.invert_yaxis()
    left.get_yticklabels()[0].set_fontweight("bold")
    fig.suptitle(f"What the DSO's total cost consists of, last {window} rounds "
                 "(mean over seeds; designs ranked by total cost)")
    fig.tight_layout()
    _legend_below(fig, left, "component")
    return _save(fig, path)


# --- 8. supply stack of one need ------------------------------------------------------

def need_offers(offers: pd.DataFrame, network: NetworkData) -> pd.DataFrame:
    """Offers joined with the needs they relieve: one row per offer and need it helps."""
    relief = network.relief.merge(network.needs[["need_id", "period"]], on="need_id")
    return offers.merge(relief, on=["period", "bus", "product"])


def choose_need(offers: pd.DataFrame, network: NetworkData) -> pd.Series | None:
    """The need with the most money in its market: accepted spend on offers that relieve it.

    EUR compare CM needs (MVA) and VC needs (p.u.) on one scale; ties (needs of one period
    relieved by the same offers) go to the need that is largest for its unit.
    """
    joined = need_offers(offers, network)
    if not len(joined):
        return None
    needs = network.needs.set_index("need_id")
    spend = (joined.awarded * joined.price * joined.hours).groupby(joined.need_id).sum()
    relative = needs.need / needs.groupby("unit").need.transform("max")
    score = pd.DataFrame({"spend": spend.round(6), "size": relative.reindex(spend.index)})
    chosen = score.sort_values(["spend", "size"], ascending=False).index[0]
    return network.needs[network.needs.need_id == chosen].iloc[0]


def relief_unit(need: pd.Series) -> tuple[float, str]:
    """(factor from the need's unit, unit) relief is drawn in: voltage in % of nominal.

    A bid's voltage relief is a few 1e-4 p.u., so its price per p.u. runs to millions;
    in % of nominal voltage both read as numbers of everyday size.
    """
    return (100.0, "% of nominal voltage") if need.unit == "p.u." else (1.0, need.unit)


def draw_stack(ax: Axes, market: pd.DataFrame, need: pd.Series) -> tuple[float, float]:
    """Bid and true-cost merit orders in relief units, accepted bids, need and clearing.

    Returns the price range of the part drawn (the x axis stops past the need and the
    accepted offers, so the far tail of dear offers does not squash the picture).
    """
    capacity = market.capacity if "capacity" in market else market.quantity
    relief = market.relief * relief_unit(need)[0]
    bids = market.assign(volume=market.quantity * relief, full=capacity * relief,
                         unit_price=market.price / relief, unit_cost=market.cost / relief,
                         relief=relief).sort_values("unit_price")
    edges = np.concatenate([[0.0], bids.volume.cumsum().to_numpy()])
    won = (bids.awarded > 0).to_numpy()
    ax.bar(edges[:-1][won], bids.unit_price[won], width=(bids.awarded * bids.relief)[won],
           align="edge", color="tab:green", alpha=0.75, edgecolor="darkgreen", linewidth=0.8,
           label="accepted (awarded part)")
    ax.stairs(bids.unit_price, edges, color="tab:blue", linewidth=1.5, label="bid price")
    costs = bids.sort_values("unit_cost")  # the competitive stack: every offer in full
    ax.stairs(costs.unit_cost, np.concatenate([[0.0], costs.full.cumsum().to_numpy()]),
              color="black", linestyle="--", linewidth=1.2,
              label="true cost (full capacity)")
    size = need.need * relief_unit(need)[0]
    ax.axvline(size, color=NEED_COLOUR, linewidth=1.5, label="need")
    if won.any():
        clearing = bids.unit_price[won].max()
        ax.axhline(clearing, color="tab:purple", linestyle=":", linewidth=1.5,
                   label=f"highest accepted: {_fmt(clearing)}")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(_short))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    accepted_end = edges[1:][won].max() if won.any() else 0.0
    right = min(edges[-1], 1.6 * max(size, accepted_end))
    ax.set_xlim(0, right)
    shown = bids[edges[:-1] < right]
    top = shown.unit_price.max()
    if won.any():  # the dearest tail says little once it is 5 x the highest accepted price
        top = min(top, 5 * bids.unit_price[won].max())
    return float(min(shown.unit_price.min(), costs.unit_cost.min())), float(top)


def supply_stack(mine: pd.DataFrame, network: NetworkData, path: Path) -> Path | None:
    """How one need's local market clears: bids vs true costs, first and last round.

    `mine`: the offers of one run (`plot_data.stack_offers`: the best design's first seed).
    """
    if not len(mine):
        return None
    market = mine.market.iloc[0]
    need = choose_need(mine, network)
    if need is None:
        return None
    joined = need_offers(mine, network)
    joined = joined[joined.need_id == need.need_id]
    rounds = sorted(set(mine["round"]))
    factor, unit = relief_unit(need)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    ranges = []
    for ax, number in zip(axes, (rounds[0], rounds[-1]), strict=True):
        ranges.append(draw_stack(ax, joined[joined["round"] == number], need))
        ax.set(title=f"round {number}",
               xlabel=f"cumulative relief ({unit}; quantity x relief per MW or MVAr)")
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylim(min(r[0] for r in ranges) / 1.3, max(r[1] for r in ranges) * 1.3)
    axes[0].set_ylabel(f"EUR per ({unit})·h of relief (log)")
    fig.text(0.5, 0.0, "Offers cheaper than the accepted ones that won nothing are held "
             "back by another limit (no-harm rows), their device's circle or energy, or "
             "not needed: `lfm-abm clear --out` says which (column `why`).",
             ha="center", va="top", fontsize=8)
    seed = mine.seed.iloc[0]
    fig.suptitle(f"Supply stack of need {need.need_id}: {need.service} on {need.element} "
                 f"{need.element_id}, period {need.period}, need {_fmt(need.need * factor)} "
                 f"{unit} - {market}, seed {seed}")
    fig.tight_layout()
    return _save(fig, path)


# --- 9. locational prices -----------------------------------------------------------

def locational_prices(boxes: pd.DataFrame, window: int, markets: list[str],
                      path: Path) -> Path:
    """What accepted bids earn at their location, per design and product (P and Q apart).

    `boxes`: quartiles, whiskers and mean per market and product (`plot_data.price_boxes`),
    drawn as seaborn would draw the boxes of the prices themselves.
    """
    order = [m for m in markets if m in set(boxes.market)]
    families = [f for f in FAMILY_COLOURS if f in set(boxes["product"].str[0])]
    fig, axes = plt.subplots(1, len(families), figsize=(7 * len(families), 0.6 * len(order) + 2),
                             sharey=True, squeeze=False)
    units = {"P": "EUR/MWh", "Q": "EUR/MVArh"}
    for ax, family in zip(axes[0], families, strict=True):
        mine = boxes[boxes["product"].str[0] == family]
        products = [p for p in PRODUCTS if p in set(mine["product"])]
        width = 0.8 / len(products)
        for k, product in enumerate(products):
            rows = mine[mine["product"] == product].set_index("market").reindex(order)
            shown = rows.q1.notna().to_numpy()
            stats = [{"q1": r.q1, "med": r.med, "q3": r.q3, "mean": r.mean,
                      "whislo": r.whislo, "whishi": r.whishi, "fliers": []}
                     for r in rows[shown].itertuples()]
            positions = np.arange(len(order))[shown] - 0.4 + width * (k + 0.5)
            ax.bxp(stats, positions=positions, widths=0.9 * width, orientation="horizontal",
                   showmeans=True, patch_artist=True, manage_ticks=False,
                   boxprops={"facecolor": PRODUCT_COLOURS[product], "linewidth": 0.8},
                   medianprops={"color": "black", "linewidth": 0.8},
                   meanprops={"marker": "D", "markerfacecolor": "white",
                              "markeredgecolor": "black", "markersize": 4})
        ax.set_yticks(np.arange(len(order)), order)
        ax.grid(axis="y", visible=False)
        ax.set(xlabel=f"locational price of accepted {family} bids ({units[family]})",
               ylabel="", title=f"{family} products")
        ax.legend(handles=[Patch(color=PRODUCT_COLOURS[p], label=p) for p in products],
                  title="product", fontsize=8, loc="lower right")
    axes[0][0].invert_yaxis()
    fig.suptitle(f"What accepted bids are worth where they are: locational prices, last "
                 f"{window} rounds, all seeds (box = quartiles, diamond = mean)")
    fig.tight_layout()
    return _save(fig, path)


# --- 10. awards map --------------------------------------------------------------------

def _draw_grid(ax: Axes, network: NetworkData) -> None:
    """Lines grey, buses small dots, needs red: CM element as a thick line, VC as a ring."""
    position = network.buses.set_index("bus")[["x", "y"]]
    ends = network.lines.join(position, on="from_bus").join(position, on="to_bus",
                                                            rsuffix="_to")
    for row in ends.itertuples(index=False):
        ax.plot([row.x, row.x_to], [row.y, row.y_to], color="0.8", linewidth=0.6, zorder=1)
    ax.scatter(position.x, position.y, s=3, color="0.6", zorder=2)
    needs = network.needs.drop_duplicates(["service", "element", "element_id"])
    for row in needs[needs.service == "CM"].itertuples(index=False):
        start, end = position.loc[row.from_bus], position.loc[row.to_bus]
        ax.plot([start.x, end.x], [start.y, end.y], color=NEED_COLOUR, linewidth=2.5,
                zorder=2)
    voltage = position.loc[needs[needs.service == "VC"].from_bus]
    ax.scatter(voltage.x, voltage.y, s=70, facecolors="none", edgecolors=NEED_COLOUR,
               marker="^", linewidths=1.2, zorder=4)


def _map_legend(fig: Figure, largest: float, scale: float) -> None:
    """P and Q colours, three reference circles (areas as MWh or MVArh per round), needs."""
    values = sorted({float(f"{largest * f:.1g}") for f in (0.1, 0.4, 1.0)})
    handles = [Line2D([], [], marker="o", linestyle="none", color=c, alpha=0.6,
                      markersize=8) for c in FAMILY_COLOURS.values()]
    handles += [Line2D([], [], marker="o", linestyle="none", color="0.5", alpha=0.5,
                       markersize=np.sqrt(v * scale)) for v in values]
    handles += [Line2D([], [], color=NEED_COLOUR, linewidth=2.5),
                Line2D([], [], color=NEED_COLOUR, marker="^", markerfacecolor="none",
                       linestyle="none", markersize=8)]
    labels = [f"{f} awarded" for f in FAMILY_COLOURS]
    labels += [f"{v:g} MWh or MVArh per round" for v in values]
    labels += ["CM need (overloaded element)", "VC need (bus)"]
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncols=len(labels), fontsize=8, borderpad=1.0, columnspacing=1.5)


def awards_map(per_bus: pd.DataFrame, network: NetworkData, window: int, markets: list[str],
               path: Path) -> Path:
    """Where flexibility is bought: mean awarded energy per bus and round, per design.

    `per_bus`: `plot_data.awards_per_bus`.
    """
    per_bus = per_bus.merge(network.buses[["bus", "x", "y"]], on="bus")
    capped = _panels_note(len(markets))
    markets = markets[:MAX_PANELS]
    columns = min(4, len(markets))
    rows = -(-len(markets) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4.2 * rows), squeeze=False)
    largest = max(per_bus.energy.max(), 1e-9) if len(per_bus) else 1.0
    scale = 400.0 / largest
    for ax, market in zip(axes.ravel(), markets, strict=False):
        _draw_grid(ax, network)
        mine = per_bus[per_bus.market == market]
        for family, colour in FAMILY_COLOURS.items():
            part = mine[mine.family == family]
            ax.scatter(part.x, part.y, s=part.energy * scale, color=colour, alpha=0.5,
                       edgecolors=colour, zorder=3)
        for bus in mine.drop_duplicates("bus").itertuples(index=False):
            ax.annotate(str(bus.bus), (bus.x, bus.y), fontsize=6, xytext=(3, 3),
                        textcoords="offset points", zorder=5)
        ax.set(title=market, xticks=[], yticks=[])
    for ax in axes.ravel()[len(markets):]:
        ax.axis("off")
    fig.suptitle(f"Where flexibility is bought: mean awarded energy per bus and round "
                 f"(area; last {window} rounds, all seeds), bus ids labelled{capped}")
    fig.tight_layout()
    _map_legend(fig, largest, scale)
    return _save(fig, path)


# --- 11. sweeps ----------------------------------------------------------------------

def _spans_decade(values: pd.Series) -> bool:
    """True if positive values span at least a factor of 10 (then a log axis reads better)."""
    values = values.dropna()
    return bool(len(values)) and values.min() > 0 and values.max() >= 10 * values.min()


def sweep(per_run: pd.DataFrame, column: str, order: Sequence[str] | None,
          path: Path, swept: Sequence[str] = ()) -> Path:
    """How the results move with a swept parameter: one line per design.

    The other swept fields enter the line label, so their values are never pooled.
    """
    settings = [c for c in varying_settings(per_run) if c != "variant"]  # variant = the sweep point
    data = per_run.assign(line=setting_labels(per_run, settings))
    for other in (c for c in swept if c != column):
        data["line"] = data.line + f" / {other}=" + data[other].astype(str)
    ordered = data.set_index("market").loc[market_order(data.market, order)]
    lines = list(dict.fromkeys(ordered.line))
    values = data[column].dropna()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), sharex=True)
    for ax, kpi in zip(axes, ("total_cost", "dso_cost", "lerner"), strict=True):
        _curves(ax, data, kpi, "line", lines, palette(lines), x=column, marker="o",
                styles=line_styles(lines))
        ax.set(ylabel=KPIS[kpi].axis_label, xlabel=SWEPT_AXES.get(column, column),
               title=KPIS[kpi].label)
        if kpi != "lerner" and _spans_decade(data[kpi]):
            ax.set_yscale("log")
    if _spans_decade(values):
        axes[0].set_xscale("log")
    if values.nunique() <= 8:  # label the swept points themselves
        axes[0].set_xticks(sorted(values.unique()), [f"{v:,g}" for v in sorted(values.unique())])
        axes[0].xaxis.set_minor_formatter(ticker.NullFormatter())
    fig.suptitle(f"Sensitivity to {column} (mean and 95 % CI over seeds)")
    fig.tight_layout()
    _legend_below(fig, axes[0], "design")
    return _save(fig, path)


# --- entry point ------------------------------------------------------------------------

def check_formats(formats: Sequence[str], field: str = "--format") -> tuple[str, ...]:
    """The figure formats asked for, checked (an unknown one names the allowed ones)."""
    wanted = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in formats if f.strip()))
    unknown = [f for f in wanted if f not in FIGURE_FORMATS]
    if unknown or not wanted:
        raise InputError(f"invalid value {','.join(formats)!r}", field=field,
                         allowed=FIGURE_FORMATS)
    return wanted


def make_plots(tables: StudyTables | Mapping[str, pd.DataFrame], per_run: pd.DataFrame,
               folder: Path, window: int, network: NetworkData | None = None,
               order: Sequence[str] | None = None, swept: Sequence[str] = (),
               n_actions: int = 11, formats: Sequence[str] = ("png",),
               years: pd.DataFrame | None = None, shown_day: str | None = None
               ) -> list[Path]:
    """All figures of a study's learned settings into `folder` (absent data: skipped).

    `tables`: the study's tables where they are stored (`StudyResults.store`), or frames
    (each with a run_id column). `n_actions`: the action grid's size (random play's
    greedy share is 1 / n_actions). `formats`: each figure is written in each (png,
    pdf, svg: vector formats for papers); the paths returned are of the first. `years`:
    a [days] study's year per seed (`results.annual`): its figure is drawn, and the
    figures over rounds show one day, `shown_day` (`annual.heaviest_day`).
    """
    token = _FORMATS.set(check_formats(formats))
    try:
        return _make_plots(tables, per_run, folder, window, network, order, swept, n_actions,
                           years, shown_day)
    finally:
        _FORMATS.reset(token)


def _make_plots(tables: StudyTables | Mapping[str, pd.DataFrame], per_run: pd.DataFrame,
                folder: Path, window: int, network: NetworkData | None,
                order: Sequence[str] | None, swept: Sequence[str], n_actions: int,
                years: pd.DataFrame | None, shown_day: str | None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    per_run = learned_rows(per_run)
    year = []
    if years is not None and len(years):
        year.append(year_comparison(learned_rows(years), order, folder / "year_comparison.png"))
    if shown_day is not None:  # one day's rounds per figure
        per_run = per_run[per_run.chosen_day == shown_day]
        swept = [column for column in swept if column not in DAY_COLUMNS]
    per_run = per_run.assign(market=setting_labels(per_run, varying_settings(per_run)))
    tags = per_run[[c for c in ("run_id", "market", "design", "pricing", "learner",
                                "variant", "seed", *swept) if c in per_run]]
    if isinstance(tables, Mapping):
        tables = StudyTables.in_memory(tables, tags)
    seen = tables.tags.drop(columns="run_order")
    try:
        tables.set_runs(tags)
        return year + _figures(tables, per_run, folder, window, network, order, swept,
                               n_actions)
    finally:
        tables.set_runs(seen)


def _figures(tables: StudyTables, per_run: pd.DataFrame, folder: Path, window: int,
             network: NetworkData | None, order: Sequence[str] | None, swept: Sequence[str],
             n_actions: int) -> list[Path]:
    sns.set_theme(style="whitegrid", context="paper")
    markets = market_order(per_run.market, order)
    ranked = order_by_total_cost(per_run, markets)
    colours = palette(markets)
    figures = [design_comparison(per_run, ranked, colours, folder / "design_comparison.png",
                                 f"last {window} rounds")]
    if tables.has("rounds"):
        plot_data.add_windows(tables, window)
        note = smoothing(tables)
        rounds = plot_data.round_means(tables, ["dso_cost", "cost_ratio", "hhi"])
        figures.append(cost_curves(rounds, markets, colours, note, folder / "cost_curves.png"))
        if set(DAYAHEAD_CURVES) - {"dso_cost_with_energy"} <= set(tables.columns("rounds")):
            gaming = plot_data.round_means(tables, ["inc_dec_mwh", "need_created", "dso_cost",
                                                    "balance_cost"])
            gaming["dso_cost_with_energy"] = gaming.dso_cost + gaming.balance_cost
            figures.append(dayahead_curves(gaming, markets, colours, note,
                                           folder / "dayahead_curves.png"))
    if tables.has("agents", "rounds"):
        figures += [
            _type_curves(smoothed_markups(tables), "markup", markets,
                         "markup of accepted bids (price / true cost - 1)",
                         "Do FSPs learn to bid above cost? Volume-weighted markup of accepted "
                         "bids", note, folder / "markups_accepted.png"),
            _type_curves(smoothed_profits(tables), "profit", markets,
                         "profit per FSP and round (EUR)",
                         "Who earns while learning? Profit per FSP and round", note,
                         folder / "learning_profits.png"),
            market_power(plot_data.lerner_per_round(tables), rounds, markets, colours, note,
                         folder / "market_power.png"),
            profits(plot_data.window_profits(tables), window, markets,
                    folder / "profits.png"),
            surplus_split(plot_data.window_costs(tables), per_run, window, ranked,
                          folder / "surplus_split.png"),
            learning(plot_data.learning_per_round(tables), window, markets, colours, n_actions,
                     note, folder / "learning.png")]
    if network is not None and tables.has("offers"):
        figures.append(supply_stack(plot_data.stack_offers(tables, ranked), network,
                                    folder / "supply_stack.png"))
    if tables.has("awards", "rounds"):
        figures.append(locational_prices(plot_data.price_boxes(tables), window, markets,
                                         folder / "locational_prices.png"))
        if network is not None and network.has_coordinates:
            figures.append(awards_map(plot_data.awards_per_bus(tables), network, window,
                                      markets, folder / "awards_map.png"))
    figures += [sweep(per_run, column, markets, folder / f"sweep_{column}.png", swept)
                for column in swept if column in per_run and per_run[column].nunique() > 1
                and pd.api.types.is_numeric_dtype(per_run[column])]  # a rule (text) is no axis
    return [path for path in figures if path is not None]
