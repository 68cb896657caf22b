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
  accepted bids, FSP rent and VOLL x unmet need per design.
* supply_stack.png: how is one need's local market cleared? Merit order of the bids and
  of their true costs in units of relief, first and last round (needs the offers table).
* locational_prices.png: what do accepted bids earn at their location? Locational
  prices of accepted bids per design and product over the window.
* awards_map.png: where is flexibility bought? Mean awarded energy per bus and round on
  the grid with the needs (needs bus coordinates).
* sweep_<column>.png: how do the results move with a swept parameter? Total cost, DSO
  cost and Lerner index vs its value, one line per design.
* learning.png: did they learn? Choice entropy and greedy-play share of the learners
  that earn in the window vs round, per design, against uniform random play.

Figures show the learned settings; the reference runs (random, truthful play) appear as
the yardstick where a figure compares with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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

from lfm_abm.files import atomic_file
from lfm_abm.market.bids import PRODUCTS
from lfm_abm.results.kpis import (
    ci_half_width,
    learned_rows,
    mean_and_ci,
    setting_labels,
    varying_settings,
)
from lfm_abm.results.registry import AGENT_TYPES, KPIS
from lfm_abm.results.store import NetworkData

DPI = 110
AGENT_COLOURS = dict(zip(AGENT_TYPES, ("#e69f00", "#009e73", "#6a3d9a"), strict=True))
FAMILY_COLOURS = {"P": "tab:orange", "Q": "tab:blue"}
PRODUCT_COLOURS = dict(zip(PRODUCTS, ("#fdae61", "#d7301f", "#92c5de", "#2166ac"),
                           strict=True))
NEED_COLOUR = "tab:red"
#: Axis labels of commonly swept fields (others: the field's name).
SWEPT_AXES = {"voll": "VOLL (EUR/MWh)", "reservation_price": "reservation price (EUR/MWh)",
              "P_scale": "P cost factor (x true P costs)",
              "Q_scale": "Q cost factor (x true Q costs)"}
SMOOTH = 5  # rounds in the moving average of the curves vs round (exploration is noisy)
COMPONENTS = {"true_cost": ("true cost of accepted bids", "#9ecae1"),
              "rent": ("FSP rent (profit)", "#de2d26"),
              "unmet_cost": ("VOLL x unmet need", "#525252")}


# --- labels, order, colours ----------------------------------------------------------

def market_order(labels: Iterable[str], order: Sequence[str] | None) -> list[str]:
    """The labels present, in the study's order (labels it does not know sorted after)."""
    present = set(labels)
    known = [m for m in dict.fromkeys(order or ()) if m in present]
    return known + sorted(present - set(known))


def palette(markets: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per market, fixed by the study's order so it is the same in every figure."""
    name = "tab10" if len(markets) <= 10 else "husl"
    return dict(zip(markets, sns.color_palette(name, len(markets)), strict=True))


def order_by_total_cost(per_run: pd.DataFrame, order: Sequence[str] | None = None
                        ) -> list[str]:
    """Markets from lowest to highest mean total cost; ties and NaN keep the study's order."""
    market = per_run["market"] if "market" in per_run else setting_labels(per_run)
    markets = market_order(market, order)
    cost = per_run.total_cost.groupby(market).mean().reindex(markets)
    return cost.sort_values(kind="stable", na_position="last").index.tolist()


def _fmt(value: float) -> str:
    """A number as an economist reads it: thousands separated, few decimals."""
    if not np.isfinite(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3f}"


def _save(fig: Figure, path: Path) -> Path:
    """Write (atomically) and close a figure (many figures per study: none kept in memory)."""
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


# --- window and summaries --------------------------------------------------------------

def _in_window(frame: pd.DataFrame, rounds: pd.DataFrame, window: int) -> pd.DataFrame:
    """Rows of the last `window` rounds of each run (the learnt regime)."""
    last = rounds.groupby("run_id")["round"].max()
    return frame[frame["round"] > frame.run_id.map(last) - window]


def _window_rounds(rounds: pd.DataFrame, window: int) -> pd.Series:
    """Rounds per run in the window, with or without awards: the divisor of per-round means."""
    return _in_window(rounds, rounds, window).groupby("run_id")["round"].nunique()


def _mean_ci(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean and 95 % CI half-width over seeds of `column`, per market (as the summary)."""
    return pd.DataFrame({market: mean_and_ci(values.to_numpy(dtype=float))
                         for market, values in frame.groupby("market")[column]},
                        index=["mean", "ci"]).T


# --- 1. design comparison ------------------------------------------------------------

def _bar_panel(ax: Axes, summary: pd.DataFrame, colours: dict, best: str, log: bool) -> None:
    """Horizontal bars with CI and the mean written beside them; the best one outlined."""
    markets = summary.index.tolist()
    y = np.arange(len(markets))
    mean, ci = summary["mean"].to_numpy(float), summary["ci"].fillna(0).to_numpy(float)
    lower = np.minimum(ci, 0.9 * mean) if log else ci  # a log axis has no room below 0
    ax.barh(y, mean, xerr=[lower, ci], color=[colours[m] for m in markets],
            edgecolor=["black" if m == best else "none" for m in markets],
            linewidth=2.0, error_kw={"elinewidth": 1, "capsize": 2})
    end = np.nan_to_num(mean + ci)
    for yi, (value, x) in enumerate(zip(mean, end, strict=True)):
        ax.text(x * 1.15 if log else x + 0.02 * max(end.max(), 1e-9), yi, _fmt(value),
                va="center", fontsize=8, fontweight="bold" if markets[yi] == best else None)
    if log:
        ax.set_xscale("log")
        positive = mean[mean > 0]
        ax.set_xlim(positive.min() / 2 if len(positive) else 1, max(end.max(), 1) * 6)
    else:
        ax.set_xlim(0, max(end.max(), 1e-9) * 1.25)


def design_comparison(per_run: pd.DataFrame, ranked: list[str], colours: dict, window: int,
                      path: Path) -> Path:
    """Which design is cheapest and solves the needs: four KPIs, best design on top."""
    panels = [("dso_cost", "What the DSO pays FSPs (log)", True),
              ("cost_ratio", "Overpayment vs competitive bids", False),
              ("unmet_need_after_ac", "Needs left to emergency action", False),
              ("total_cost", "Total cost = payments + VOLL x unmet (log)", True)]
    best = ranked[0]
    fig, axes = plt.subplots(1, 4, figsize=(18, 0.45 * len(ranked) + 2), sharey=True)
    for ax, (column, title, log) in zip(axes, panels, strict=True):
        _bar_panel(ax, _mean_ci(per_run, column).reindex(ranked), colours, best, log)
        ax.set(xlabel=KPIS[column].axis_label, title=title)
        ax.grid(axis="y", visible=False)
    y = np.arange(len(ranked))
    truthful = per_run.groupby("market").truthful_cost.mean().reindex(ranked)
    axes[0].scatter(truthful, y, marker="D", color="black", s=22, zorder=5,
                    label="truthful benchmark")
    axes[0].legend(fontsize=8, loc="lower right")
    axes[1].axvline(1.0, color="black", linestyle="--", linewidth=1, label="competitive")
    axes[1].legend(fontsize=8, loc="lower right")
    axes[0].set_yticks(y, ranked)
    axes[0].invert_yaxis()  # best (lowest total cost) at the top
    axes[0].get_yticklabels()[0].set_fontweight("bold")
    seeds = per_run.groupby("market").size().min()
    fig.suptitle(f"Which design is cheapest and solves the needs? Ranked by total cost, best "
                 f"outlined (mean and 95 % CI over {seeds} seeds, last {window} rounds)")
    fig.tight_layout()
    return _save(fig, path)


# --- 2./3. learning curves by agent type -------------------------------------------

def _smooth(frame: pd.DataFrame, y: str, keys: Sequence[str]) -> pd.DataFrame:
    """Trailing moving average of `y` over SMOOTH rounds per curve: trends over noise."""
    frame = frame.sort_values("round")
    moving = frame.groupby(list(keys))[y].transform(
        lambda s: s.rolling(SMOOTH, min_periods=1).mean())
    return frame.assign(**{y: moving})


def accepted_markups(agents: pd.DataFrame) -> pd.DataFrame:
    """Volume-weighted markup of accepted bids per run, round, agent type and family.

    P (MWh) and Q (MVArh) are kept apart, as in the `markup_<type>_<family>` KPIs: their
    volumes do not add.
    """
    won = agents[agents.awarded > 0].assign(weighted=lambda a: a.markup * a.awarded)
    sums = won.groupby(["market", "run_id", "round", "fsp_type", "family"], as_index=False)[
        ["weighted", "awarded"]].sum()
    markups = sums.assign(markup=sums.weighted / sums.awarded,
                          curve=sums.fsp_type + " " + sums.family)
    return _smooth(markups, "markup", ["run_id", "curve"])


def profit_per_fsp(agents: pd.DataFrame) -> pd.DataFrame:
    """Mean profit per FSP (summed over its product families) per run, round and type."""
    per_fsp = agents.groupby(["market", "run_id", "round", "fsp_type", "fsp_id"],
                             as_index=False).profit.sum()
    means = per_fsp.groupby(["market", "run_id", "round", "fsp_type"], as_index=False
                            ).profit.mean()
    return _smooth(means, "profit", ["run_id", "fsp_type"])


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
    for name in order:
        line = summary[summary[key] == name]
        if not len(line):
            continue
        ax.plot(line[x], line["mean"], color=colours[name], label=name, linewidth=1,
                marker=marker, linestyle=(styles or {}).get(name, "-"))
        ax.fill_between(line[x], line["mean"] - line.ci, line["mean"] + line.ci,
                        color=colours[name], alpha=0.2, linewidth=0)
    return summary


def _type_curves(data: pd.DataFrame, y: str, markets: list[str], ylabel: str, title: str,
                 path: Path) -> Path:
    """One panel per market, one line per agent type (mean and CI over seeds) vs round."""
    key = "curve" if "curve" in data else "fsp_type"  # type, or type and family
    curves = [c for t in AGENT_TYPES for c in (t, f"{t} P", f"{t} Q") if c in set(data[key])]
    colours = {c: AGENT_COLOURS[c.split()[0]] for c in curves}
    styles = {c: "--" if c.endswith(" Q") else "-" for c in curves}
    shown = [m for m in markets if m in set(data.market)]
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
    fig.suptitle(f"{title}\n(mean and 95 % CI over seeds, {SMOOTH}-round moving average)")
    fig.tight_layout()
    handles = [Line2D([], [], color=colours[c], linestyle=styles[c], label=c) for c in curves]
    fig.legend(handles=handles, title="agent type (and product family)", loc="upper center",
               bbox_to_anchor=(0.5, 0.0), ncols=len(curves), fontsize=8)
    return _save(fig, path)


# --- 4./5. cost and market power vs round ---------------------------------------------

def _market_lines(ax: Axes, data: pd.DataFrame, y: str, markets: list[str],
                  colours: dict) -> None:
    """One line per market (mean and 95 % CI over seeds, moving average) vs round."""
    _curves(ax, _smooth(data, y, ["run_id"]), y, "market", markets, colours)
    ax.set_xlabel("round")


def _legend_below(fig: Figure, ax: Axes, title: str) -> None:
    """Move an axes' legend below the figure, one row: it then hides no curve."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, title=title, loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncols=min(len(labels), 8), fontsize=8)


def cost_curves(rounds: pd.DataFrame, markets: list[str], colours: dict, path: Path) -> Path:
    """Does the cost settle, and how far above competitive: DSO cost and cost / truthful."""
    data = rounds[rounds.status == "ok"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), sharex=True)
    _market_lines(left, data, "dso_cost", markets, colours)
    left.set(yscale="log", ylabel=KPIS["dso_cost"].axis_label, title="DSO cost per round (log)")
    _market_lines(right, data, "cost_ratio", markets, colours)
    right.axhline(1.0, color="black", linestyle="--", linewidth=1)
    right.set(ylabel=KPIS["cost_ratio"].axis_label,
              title="Cost relative to truthful bidding (dashed = competitive)")
    fig.suptitle(f"Cost curves by design (mean and 95 % CI over seeds, {SMOOTH}-round moving "
                 "average)")
    fig.tight_layout()
    _legend_below(fig, left, "design")
    return _save(fig, path)


def learning_per_round(agents: pd.DataFrame, rounds: pd.DataFrame, window: int
                       ) -> pd.DataFrame:
    """Per run and round: mean entropy and greedy-play share of the window's earners.

    Greedy play: the action chosen is the one the learner believed best when choosing
    (its greedy action recorded after the round before). The earners are the learners
    with a profit in the run's window: those whose learning decides the KPIs.
    """
    agents = agents.sort_values("round")
    believed = agents.groupby(["run_id", "fsp_id", "family"]).greedy.shift(1)
    agents = agents.assign(played_greedy=(agents.action == believed).astype(float))
    earns = _in_window(agents, rounds, window).groupby(["run_id", "fsp_id", "family"]
                                                       ).profit.max() > 0
    keys = pd.MultiIndex.from_frame(agents[["run_id", "fsp_id", "family"]])
    earners = agents[earns.reindex(keys, fill_value=False).to_numpy()]
    earners = earners[believed.loc[earners.index].notna()]
    return earners.groupby(["market", "run_id", "round"], as_index=False)[
        ["entropy", "played_greedy"]].mean()


def learning(agents: pd.DataFrame, rounds: pd.DataFrame, window: int, markets: list[str],
             colours: dict, n_actions: int, path: Path) -> Path:
    """Did they learn: earners' choice entropy and greedy play vs round, vs random play."""
    data = learning_per_round(agents, rounds, window)
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
                 f"95 % CI over seeds, {SMOOTH}-round moving average)")
    fig.tight_layout()
    _legend_below(fig, left, "design")
    return _save(fig, path)


def lerner_per_round(agents: pd.DataFrame) -> pd.DataFrame:
    """Lerner index of accepted bids per run and round: sum profit / sum payment."""
    won = agents[agents.awarded > 0]
    sums = won.groupby(["market", "run_id", "round"], as_index=False)[
        ["profit", "payment"]].sum()
    return sums.assign(lerner=sums.profit / sums.payment.where(sums.payment > 0))


def market_power(agents: pd.DataFrame, rounds: pd.DataFrame, markets: list[str],
                 colours: dict, path: Path) -> Path:
    """Is there market power: Lerner index of accepted bids and HHI per need vs round."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), sharex=True)
    _market_lines(left, lerner_per_round(agents), "lerner", markets, colours)
    left.set(ylabel=f"{KPIS['lerner'].label} of accepted bids ((price - cost) / price)",
             title="Margin over true cost (0 = competitive, 1 = all rent)")
    _market_lines(right, rounds[rounds.status == "ok"], "hhi", markets, colours)
    right.axhline(10_000, color="black", linestyle=":", linewidth=1)
    right.set(ylabel=KPIS["hhi"].axis_label,
              title="Concentration of each need's relief (10 000 = one FSP)")
    fig.suptitle(f"Market power by design (mean and 95 % CI over seeds, {SMOOTH}-round "
                 "moving average)")
    fig.tight_layout()
    _legend_below(fig, left, "design")
    return _save(fig, path)


# --- 6./7. rent over the window ----------------------------------------------------

def window_profits(agents: pd.DataFrame, rounds: pd.DataFrame, window: int) -> pd.DataFrame:
    """Mean profit per FSP and round over the window, per run and FSP."""
    recent = _in_window(agents, rounds, window)
    per_fsp = recent.groupby(["market", "run_id", "fsp_id", "fsp_type"], as_index=False
                             ).profit.sum()
    return per_fsp.assign(profit=per_fsp.profit
                          / per_fsp.run_id.map(_window_rounds(rounds, window)))


def profits(agents: pd.DataFrame, rounds: pd.DataFrame, window: int, markets: list[str],
            path: Path) -> Path:
    """How the rent is shared: distribution of FSP profits per design and agent type."""
    data = window_profits(agents, rounds, window)
    types = [t for t in AGENT_TYPES if t in set(data.fsp_type)]
    order = [m for m in markets if m in set(data.market)]
    fig, ax = plt.subplots(figsize=(11, 0.6 * len(order) + 2))
    common = {"data": data, "x": "profit", "y": "market", "hue": "fsp_type", "order": order,
              "hue_order": types, "palette": AGENT_COLOURS, "ax": ax}
    sns.boxplot(**common, showfliers=False, boxprops={"alpha": 0.45}, linewidth=0.8)
    sns.stripplot(**common, dodge=True, size=2.5, alpha=0.7, legend=False, jitter=0.25)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=min(data.profit.min() * 1.5, 0.0))  # no empty negative half
    ax.set(xlabel="mean profit per FSP and round (EUR per round, symlog)", ylabel="")
    ax.legend(title="agent type", fontsize=8, loc="lower right")
    fig.suptitle(f"Who earns the rent? Profit per FSP over the last {window} rounds "
                 "(one dot per FSP and seed)")
    fig.tight_layout()
    return _save(fig, path)


def cost_components(agents: pd.DataFrame, rounds: pd.DataFrame, per_run: pd.DataFrame,
                    window: int) -> pd.DataFrame:
    """Per market, the mean over seeds of true cost, FSP rent and VOLL x unmet per round."""
    recent = _in_window(agents, rounds, window)
    sums = recent.groupby("run_id")[["true_cost", "profit"]].sum()
    sums = sums.div(_window_rounds(rounds, window), axis=0).reindex(per_run.run_id)
    runs = pd.DataFrame({"market": per_run.market.to_numpy(),
                         "true_cost": sums.true_cost.fillna(0.0).to_numpy(),
                         "rent": sums.profit.fillna(0.0).to_numpy(),
                         "unmet_cost": per_run.unmet_cost_after_ac.fillna(0.0).to_numpy()})
    return runs.groupby("market")[list(COMPONENTS)].mean()


def surplus_split(agents: pd.DataFrame, rounds: pd.DataFrame, per_run: pd.DataFrame,
                  window: int, ranked: list[str], path: Path) -> Path:
    """What the DSO's total cost consists of: absolute (EUR per round) and shares."""
    parts = cost_components(agents, rounds, per_run, window).reindex(ranked)
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
        left.text(total[market] + 0.01 * total.max(), yi,
                  f"{_fmt(total[market])} = {_fmt(row.true_cost)} + {_fmt(row.rent)} + "
                  f"{_fmt(row.unmet_cost)}", va="center", fontsize=8)
    left.set_xlim(0, total.max() * 1.6)
    left.set(xlabel="EUR per round (text: total = true cost + rent + VOLL x unmet)",
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


def draw_stack(ax: Axes, market: pd.DataFrame, need: pd.Series) -> tuple[float, float]:
    """Bid and true-cost merit orders in relief units, accepted bids, need and clearing.

    Returns the price range of the part drawn (the x axis stops past the need and the
    accepted offers, so the far tail of dear offers does not squash the picture).
    """
    capacity = market.capacity if "capacity" in market else market.quantity
    bids = market.assign(volume=market.quantity * market.relief,
                         full=capacity * market.relief,
                         unit_price=market.price / market.relief,
                         unit_cost=market.cost / market.relief).sort_values("unit_price")
    edges = np.concatenate([[0.0], bids.volume.cumsum().to_numpy()])
    won = (bids.awarded > 0).to_numpy()
    ax.bar(edges[:-1][won], bids.unit_price[won], width=(bids.awarded * bids.relief)[won],
           align="edge", color="tab:green", alpha=0.35, label="accepted (awarded part)")
    ax.stairs(bids.unit_price, edges, color="tab:blue", linewidth=1.5, label="bid price")
    costs = bids.sort_values("unit_cost")  # the competitive stack: every offer in full
    ax.stairs(costs.unit_cost, np.concatenate([[0.0], costs.full.cumsum().to_numpy()]),
              color="black", linestyle="--", linewidth=1.2,
              label="true cost (full capacity)")
    ax.axvline(need.need, color=NEED_COLOUR, linewidth=1.5, label="need")
    if won.any():
        clearing = bids.unit_price[won].max()
        ax.axhline(clearing, color="tab:purple", linestyle=":", linewidth=1.5,
                   label=f"highest accepted: {_fmt(clearing)}")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: _fmt(value)))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    accepted_end = edges[1:][won].max() if won.any() else 0.0
    right = min(edges[-1], 1.6 * max(need.need, accepted_end))
    ax.set_xlim(0, right)
    shown = bids[edges[:-1] < right]
    top = shown.unit_price.max()
    if won.any():  # the dearest tail says little once it is 5 x the highest accepted price
        top = min(top, 5 * bids.unit_price[won].max())
    return float(min(shown.unit_price.min(), costs.unit_cost.min())), float(top)


def supply_stack(offers: pd.DataFrame, network: NetworkData, ranked: list[str],
                 path: Path) -> Path | None:
    """How one need's local market clears: bids vs true costs, first and last round."""
    market = next((m for m in ranked if m in set(offers.market)), None)
    if market is None:
        return None
    mine = offers[offers.market == market]
    run_id = mine.sort_values("seed").run_id.iloc[0]
    mine = mine[mine.run_id == run_id]
    need = choose_need(mine, network)
    if need is None:
        return None
    joined = need_offers(mine, network)
    joined = joined[joined.need_id == need.need_id]
    rounds = sorted(set(mine["round"]))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    ranges = []
    for ax, number in zip(axes, (rounds[0], rounds[-1]), strict=True):
        ranges.append(draw_stack(ax, joined[joined["round"] == number], need))
        ax.set(title=f"round {number}",
               xlabel=f"cumulative relief ({need.unit}; quantity x relief per MW or MVAr)")
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylim(min(r[0] for r in ranges) / 1.3, max(r[1] for r in ranges) * 1.3)
    axes[0].set_ylabel(f"price / relief (EUR per {need.unit}·h of relief, log)")
    seed = mine.seed.iloc[0]
    fig.suptitle(f"Supply stack of need {need.need_id}: {need.service} on {need.element} "
                 f"{need.element_id}, period {need.period}, need {_fmt(need.need)} "
                 f"{need.unit} - {market}, seed {seed}")
    fig.tight_layout()
    return _save(fig, path)


# --- 9. locational prices -----------------------------------------------------------

def locational_prices(awards: pd.DataFrame, rounds: pd.DataFrame, window: int,
                      markets: list[str], path: Path) -> Path:
    """What accepted bids earn at their location, per design and product (P and Q apart)."""
    data = _in_window(awards, rounds, window)
    order = [m for m in markets if m in set(data.market)]
    families = [f for f in FAMILY_COLOURS if f in set(data["product"].str[0])]
    fig, axes = plt.subplots(1, len(families), figsize=(7 * len(families), 0.6 * len(order) + 2),
                             sharey=True, squeeze=False)
    units = {"P": "EUR/MWh", "Q": "EUR/MVArh"}
    for ax, family in zip(axes[0], families, strict=True):
        mine = data[data["product"].str[0] == family]
        products = [p for p in PRODUCTS if p in set(mine["product"])]
        sns.boxplot(data=mine, x="locational_price", y="market", hue="product", order=order,
                    hue_order=products, palette=PRODUCT_COLOURS, showfliers=False,
                    showmeans=True, linewidth=0.8, ax=ax,
                    meanprops={"marker": "D", "markerfacecolor": "white",
                               "markeredgecolor": "black", "markersize": 4})
        ax.set(xlabel=f"locational price of accepted {family} bids ({units[family]})",
               ylabel="", title=f"{family} products")
        ax.legend(title="product", fontsize=8, loc="lower right")
    fig.suptitle(f"What accepted bids are worth where they are: locational prices, last "
                 f"{window} rounds, all seeds (box = quartiles, diamond = mean)")
    fig.tight_layout()
    return _save(fig, path)


# --- 10. awards map --------------------------------------------------------------------

def awards_per_bus(awards: pd.DataFrame, rounds: pd.DataFrame, window: int) -> pd.DataFrame:
    """Mean awarded energy per market, bus and family per round of the window."""
    recent = _in_window(awards, rounds, window)
    recent = recent.assign(energy=recent.awarded * recent.hours,
                           family=recent["product"].str[0])
    runs = rounds.drop_duplicates("run_id")
    per_market = runs.run_id.map(_window_rounds(rounds, window)).groupby(runs.market).sum()
    per_bus = recent.groupby(["market", "bus", "family"], as_index=False).energy.sum()
    return per_bus.assign(energy=per_bus.energy / per_bus.market.map(per_market))


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


def awards_map(awards: pd.DataFrame, rounds: pd.DataFrame, network: NetworkData,
               window: int, markets: list[str], path: Path) -> Path:
    """Where flexibility is bought: mean awarded energy per bus and round, per design."""
    per_bus = awards_per_bus(awards, rounds, window).merge(network.buses[["bus", "x", "y"]],
                                                           on="bus")
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
                 f"(area; last {window} rounds, all seeds), bus ids labelled")
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
        _curves(ax, data, kpi, "line", lines, palette(lines), x=column, marker="o")
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

def _present(tables: dict[str, pd.DataFrame], *names: str) -> bool:
    """True if every named table exists and has rows (else its figures are skipped)."""
    return all(tables.get(name) is not None and len(tables[name]) for name in names)


def make_plots(tables: dict[str, pd.DataFrame], per_run: pd.DataFrame, folder: Path,
               window: int, network: NetworkData | None = None,
               order: Sequence[str] | None = None, swept: Sequence[str] = (),
               n_actions: int = 11) -> list[Path]:
    """All figures of a study's learned settings into `folder` (absent data: skipped).

    `n_actions`: the action grid's size (random play's greedy share is 1 / n_actions).
    """
    folder.mkdir(parents=True, exist_ok=True)
    learned = set(learned_rows(per_run).run_id)
    per_run = per_run[per_run.run_id.isin(learned)]
    tables = {name: frame[frame.run_id.isin(learned)] for name, frame in tables.items()
              if frame is not None and "run_id" in frame}
    sns.set_theme(style="whitegrid", context="paper")
    settings = varying_settings(per_run)
    per_run = per_run.assign(market=setting_labels(per_run, settings))
    tables = {name: frame.assign(market=setting_labels(frame, settings))
              for name, frame in tables.items() if frame is not None and "design" in frame}
    markets = market_order(per_run.market, order)
    ranked = order_by_total_cost(per_run, markets)
    colours = palette(markets)
    figures = [design_comparison(per_run, ranked, colours, window,
                                 folder / "design_comparison.png")]
    rounds = tables.get("rounds")
    if _present(tables, "agents", "rounds"):
        agents = tables["agents"]
        figures += [
            _type_curves(accepted_markups(agents), "markup", markets,
                         "markup of accepted bids (price / true cost - 1)",
                         "Do FSPs learn to bid above cost? Volume-weighted markup of accepted "
                         "bids", folder / "markups_accepted.png"),
            _type_curves(profit_per_fsp(agents), "profit", markets,
                         "profit per FSP and round (EUR)",
                         "Who earns while learning? Profit per FSP and round",
                         folder / "learning_profits.png"),
            market_power(agents, rounds, markets, colours, folder / "market_power.png"),
            profits(agents, rounds, window, markets, folder / "profits.png"),
            surplus_split(agents, rounds, per_run, window, ranked,
                          folder / "surplus_split.png"),
            learning(agents, rounds, window, markets, colours, n_actions,
                     folder / "learning.png")]
    if _present(tables, "rounds"):
        figures.append(cost_curves(rounds, markets, colours, folder / "cost_curves.png"))
    if network is not None and _present(tables, "offers"):
        figures.append(supply_stack(tables["offers"], network, ranked,
                                    folder / "supply_stack.png"))
    if _present(tables, "awards", "rounds"):
        figures.append(locational_prices(tables["awards"], rounds, window, markets,
                                         folder / "locational_prices.png"))
        if network is not None and network.has_coordinates:
            figures.append(awards_map(tables["awards"], rounds, network, window, markets,
                                      folder / "awards_map.png"))
    figures += [sweep(per_run, column, markets, folder / f"sweep_{column}.png", swept)
                for column in swept if column in per_run and per_run[column].nunique() > 1]
    return [path for path in figures if path is not None]
