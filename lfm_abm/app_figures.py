"""The app's figures, one per question, drawn from the latest round (`app_model`).

Figures are built as `matplotlib.figure.Figure` objects without pyplot, so the page's
sessions (threads) share no global figure state.

* grid_map: where is the grid stressed and where is flexibility bought? Branches
  coloured by loading, buses by voltage, the needs outlined, awards at their buses.
* stack_figure: how does one need's local market clear? The supply stack of the
  round's offers against their true costs, the need and the clearing price.
* cost_figure: what does the DSO pay, against truthful offers, and what is left unmet?
* bidding_figure: do FSPs learn to mark up, and who earns? Markups of accepted bids and
  profit per FSP by agent type, per round.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colors
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lfm_abm.app_model import GridState
from lfm_abm.market.bids import PRODUCTS
from lfm_abm.results.lazy import StudyTables
from lfm_abm.results.plots import (
    AGENT_COLOURS,
    NEED_COLOUR,
    PRODUCT_COLOURS,
    SMOOTH,
    draw_stack,
    smoothed_markups,
    smoothed_profits,
)
from lfm_abm.results.registry import AGENT_TYPES

#: Bus ids are written on the map up to this many buses (else only where something is).
LABEL_ALL_BUSES = 40
#: Marker area (points^2) of the largest award on the map.
LARGEST_AWARD = 600.0


def _message(fig: Figure, text: str) -> Figure:
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="0.35")
    return fig


def _branches(ax, state: GridState, fig: Figure) -> None:
    """Branches coloured by loading (yellow at 100 %), the CM needs under a red halo."""
    branches = state.branches
    segments = np.stack([branches[["x", "y"]].to_numpy(),
                         branches[["x_to", "y_to"]].to_numpy()], axis=1)
    top = max(150.0, float(branches.loading_percent.max()))
    norm = colors.TwoSlopeNorm(vmin=0.0, vcenter=100.0, vmax=top)
    congested = branches.merge(state.needs[state.needs.service == "CM"],
                               on=["element", "element_id"])
    if len(congested):
        halo = np.stack([congested[["x", "y"]].to_numpy(),
                         congested[["x_to", "y_to"]].to_numpy()], axis=1)
        ax.add_collection(LineCollection(halo, colors=NEED_COLOUR, linewidths=9, alpha=0.3,
                                         zorder=1))
    lines = LineCollection(segments, array=branches.loading_percent.to_numpy(),
                           cmap="RdYlGn_r", norm=norm, linewidths=2.2, zorder=2)
    ax.add_collection(lines)
    fig.colorbar(lines, ax=ax, shrink=0.7, pad=0.01, label="branch loading (%)")


def _buses(ax, state: GridState, fig: Figure) -> None:
    """Buses coloured by voltage (white at 1 p.u.), VC needs ringed by a red triangle."""
    buses = state.buses
    spread = max(0.06, float(np.abs(buses.vm_pu - 1.0).max()))
    norm = colors.TwoSlopeNorm(vmin=1.0 - spread, vcenter=1.0, vmax=1.0 + spread)
    dots = ax.scatter(buses.x, buses.y, c=buses.vm_pu, cmap="coolwarm", norm=norm, s=28,
                      edgecolors="0.3", linewidths=0.5, zorder=3)
    fig.colorbar(dots, ax=ax, shrink=0.7, pad=0.01, label="bus voltage (p.u.)")
    low_high = buses.set_index("bus").loc[state.needs[state.needs.service == "VC"].element_id]
    ax.scatter(low_high.x, low_high.y, s=150, marker="^", facecolors="none",
               edgecolors=NEED_COLOUR, linewidths=1.4, zorder=4)


def _awards(ax, state: GridState) -> float:
    """Awards as circles per product at their bus (area ~ MW or MVAr); returns the largest."""
    awards = state.awards
    largest = float(awards.awarded.max()) if len(awards) else 0.0
    if not largest:
        return 0.0
    extent = max(np.ptp(state.buses.x), np.ptp(state.buses.y), 1e-9)
    offsets = {product: 0.012 * extent * np.array([np.cos(a), np.sin(a)])
               for product, a in zip(PRODUCTS, np.pi / 4 + np.arange(4) * np.pi / 2,
                                     strict=True)}
    for product in PRODUCTS:
        mine = awards[awards["product"] == product]
        dx, dy = offsets[product]
        ax.scatter(mine.x + dx, mine.y + dy, s=LARGEST_AWARD * mine.awarded / largest,
                   color=PRODUCT_COLOURS[product], alpha=0.6, edgecolors="0.2",
                   linewidths=0.5, zorder=5)
    return largest


def _labels(ax, state: GridState) -> None:
    """Bus ids: every bus on a small grid, else only buses with a need or an award."""
    buses = state.buses
    if len(buses) > LABEL_ALL_BUSES:
        marked = set(state.awards.bus) | set(state.needs.from_bus) | set(state.needs.to_bus)
        buses = buses[buses.bus.isin(marked)]
    for bus in buses.itertuples(index=False):
        ax.annotate(str(bus.bus), (bus.x, bus.y), fontsize=7, xytext=(4, 4),
                    textcoords="offset points", zorder=6)


def grid_map(state: GridState, round_number: int) -> Figure:
    """The grid in one period: loading, voltage, needs and the round's awards."""
    fig = Figure(figsize=(7.6, 6.0), layout="constrained")
    ax = fig.subplots()
    _branches(ax, state, fig)
    _buses(ax, state, fig)
    largest = _awards(ax, state)
    _labels(ax, state)
    ax.autoscale_view()
    ax.margins(0.06)
    ax.set(xticks=[], yticks=[], aspect="equal")
    when = (f"AC power flow with round {round_number}'s awards" if state.after_awards
            else "baseline (no round cleared yet)")
    ax.set_title(f"Period {state.label}: {when}", fontsize=10)
    handles = [Line2D([], [], marker="o", linestyle="none", color=PRODUCT_COLOURS[p],
                      alpha=0.6, markersize=8, label=f"{p} awarded") for p in PRODUCTS]
    handles += [Line2D([], [], color=NEED_COLOUR, linewidth=6, alpha=0.3,
                       label="CM need (overloaded branch)"),
                Line2D([], [], color=NEED_COLOUR, marker="^", markerfacecolor="none",
                       linestyle="none", markersize=9, label="VC need (bus voltage)")]
    if largest:
        handles.append(Line2D([], [], linestyle="none", label=f"largest circle: "
                              f"{largest:.3g} MW or MVAr"))
    fig.legend(handles=handles, fontsize=7, loc="outside lower center", ncols=3)
    return fig


def stack_figure(market: pd.DataFrame, need: pd.Series | None) -> Figure:
    """One need's supply stack in relief units: bids, true costs, accepted, need, price."""
    fig = Figure(figsize=(7.6, 4.6), layout="constrained")
    if need is None:
        return _message(fig, "the design buys no need on this grid's day")
    if not len(market):
        return _message(fig, "step a round to see the offers for this need")
    ax = fig.subplots()
    low, high = draw_stack(ax, market, need)
    ax.set_ylim(low / 1.3, high * 1.3)
    ax.set(xlabel=f"cumulative relief ({need.unit}; quantity x relief per MW or MVAr)",
           ylabel=f"EUR per {need.unit}·h of relief (log)")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"Need {need.need_id}: {need.service} on {need.element} {need.element_id}, "
                 f"period {need.period}, {need.need:.3g} {need.unit} "
                 f"(purple: clearing price = dearest accepted offer)", fontsize=9)
    return fig


def cost_figure(rounds: pd.DataFrame) -> Figure:
    """DSO cost and truthful benchmark per round; unmet need after AC per round."""
    fig = Figure(figsize=(7.6, 4.6), layout="constrained")
    cleared = rounds[rounds.status == "ok"] if len(rounds) else rounds
    if not len(cleared):
        return _message(fig, "step a round to see the DSO's cost")
    cost_ax, unmet_ax = fig.subplots(2, 1, sharex=True)
    cost_ax.plot(cleared["round"], cleared.dso_cost, color="tab:blue", marker=".",
                 label="DSO cost (payments to FSPs)")
    cost_ax.plot(cleared["round"], cleared.truthful_cost, color="black", linestyle="--",
                 marker=".", label="truthful benchmark (offers at true cost)")
    positive = cleared[["dso_cost", "truthful_cost"]].to_numpy()
    positive = positive[positive > 0]
    if len(positive) and positive.max() > 10 * positive.min():
        cost_ax.set_yscale("log")
    cost_ax.set(ylabel="EUR per round")
    cost_ax.legend(fontsize=7)
    unmet_ax.plot(cleared["round"], cleared.unmet_need_after_ac, color="tab:red", marker=".",
                  label="unmet need after AC (emergency action)")
    unmet_ax.plot(cleared["round"], cleared.unmet_need_no_market, color="0.5", linestyle=":",
                  marker=".", label="without a market")
    unmet_ax.set(xlabel="round", ylabel="MWh per round")
    unmet_ax.set_ylim(bottom=0)
    unmet_ax.legend(fontsize=7)
    return fig


def bidding_figure(agents: pd.DataFrame) -> Figure:
    """Volume-weighted markup of accepted bids and mean profit per FSP, by agent type."""
    fig = Figure(figsize=(7.6, 4.6), layout="constrained")
    if not len(agents):
        return _message(fig, "step a round to see the bids")
    tables = StudyTables.in_memory({"agents": agents.assign(run_id="app")},
                                   pd.DataFrame({"run_id": ["app"], "market": ["app"]}))
    markup_ax, profit_ax = fig.subplots(2, 1, sharex=True)
    markups = smoothed_markups(tables)
    for (kind, family), line in markups.groupby(["fsp_type", "family"]):
        markup_ax.plot(line["round"], line.markup, color=AGENT_COLOURS[kind], marker=".",
                       linestyle="-" if family == "P" else "--", label=f"{kind} {family}")
    markup_ax.set(ylabel="markup of accepted bids\n(price / true cost - 1)")
    if len(markups):
        markup_ax.legend(fontsize=7, ncols=2)
    profits = smoothed_profits(tables)
    for kind in AGENT_TYPES:
        line = profits[profits.fsp_type == kind]
        if len(line):
            profit_ax.plot(line["round"], line.profit, color=AGENT_COLOURS[kind], marker=".",
                           label=kind)
    profit_ax.axhline(0.0, color="0.6", linewidth=0.8)
    profit_ax.set(xlabel=f"round (moving mean over {SMOOTH} rounds)",
                  ylabel="profit per FSP\n(EUR per round)")
    profit_ax.legend(fontsize=7)
    return fig
