"""Seaborn figures of a study, rebuilt from saved results (never from a new simulation).

* learning_markups.png, learning_profits.png: mean markup and mean profit per FSP by
  agent type vs round, one panel per design; line = mean over seeds, band = 95 % CI.
* cost_curves.png: DSO procurement cost per round by design (log scale) and its ratio to
  the cost of the same round's offers at true cost (1 = competitive).
* design_comparison.png: cost and unmet need after AC validation per design over the
  last-rounds window (mean and 95 % CI over seeds).
* awards_map.png: the grid (bus coordinates saved with the study) with the mean awarded
  energy per bus and round, P and Q, one panel per design.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, also on servers and CI

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

CI = ("ci", 95)


def _label(frame: pd.DataFrame) -> pd.Series:
    """Design label with pricing and learner when a study varies them."""
    label = frame.design.astype(str)
    for column in ("pricing", "learner", "variant"):
        if column in frame and frame[column].nunique() > 1:
            label = label + " / " + frame[column].astype(str)
    return label


def learning_curves(agents: pd.DataFrame, measure: str, path: Path) -> Path:
    """Mean `measure` (markup or profit) per FSP by agent type vs round, a panel per design."""
    keys = ["design", "pricing", "learner", "variant", "seed", "round", "fsp_type"]
    if measure == "profit":  # an FSP's profit is the sum over its product families
        agents = agents.groupby([*keys, "fsp_id"], as_index=False)[measure].sum()
    per_seed = agents.groupby(keys, as_index=False)[measure].mean()
    per_seed["market"] = _label(per_seed)
    columns = min(4, per_seed.market.nunique())
    grid = sns.relplot(data=per_seed, x="round", y=measure, hue="fsp_type", col="market",
                       col_wrap=columns, kind="line", errorbar=CI, n_boot=200, seed=0,
                       facet_kws={"sharey": measure == "markup"}, height=2.6, aspect=1.3)
    label = ("markup over true cost (x)" if measure == "markup"
             else "profit per FSP and round (EUR)")
    grid.set_axis_labels("round", label)
    grid.set_titles(col_template="{col_name}")
    grid.figure.suptitle(f"Learning curves: {label}, mean and 95 % CI over seeds", y=1.03)
    grid.legend.set_title("agent type")
    grid.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(grid.figure)
    return path


def cost_curves(rounds: pd.DataFrame, path: Path) -> Path:
    """DSO cost per round by design (log scale) and its ratio to truthful bidding."""
    data = rounds[rounds.status == "ok"].copy()
    data["market"] = _label(data)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), sharex=True)
    sns.lineplot(data=data, x="round", y="dso_cost", hue="market", errorbar=CI, n_boot=200,
                 seed=0, ax=left)
    left.set(yscale="log", xlabel="round", ylabel="DSO procurement cost per round (EUR)",
             title="DSO cost per round")
    sns.lineplot(data=data, x="round", y="cost_ratio", hue="market", errorbar=CI, n_boot=200,
                 seed=0, ax=right, legend=False)
    right.axhline(1.0, color="black", linestyle="--", linewidth=1)
    right.set(xlabel="round", ylabel="cost / cost at truthful bids",
              title="Cost relative to truthful bidding (dashed = competitive)")
    left.legend(fontsize=7, title="design")
    fig.suptitle("Cost curves by design (mean and 95 % CI over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def design_comparison(per_run: pd.DataFrame, path: Path) -> Path:
    """Cost and unmet need after AC per design over the last-rounds window."""
    data = per_run.copy()
    data["market"] = _label(data)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    panels = [("dso_cost", "DSO procurement cost per round (EUR)"),
              ("cost_ratio", "cost / truthful-bidding cost"),
              ("unmet_need_after_ac", "unmet need after AC (MWh of emergency action)"),
              ("total_cost", "procurement + VOLL x unmet need (EUR)")]
    for ax, (column, label) in zip(axes, panels, strict=True):
        sns.barplot(data=data, y="market", x=column, errorbar=CI, n_boot=200, seed=0, ax=ax,
                    color=sns.color_palette()[0])
        ax.set(xlabel=label, ylabel="")
    fig.suptitle("Design comparison over the last rounds (mean and 95 % CI over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def awards_map(awards: pd.DataFrame, rounds: pd.DataFrame,
               network: tuple[pd.DataFrame, pd.DataFrame], window: int, path: Path) -> Path:
    """Where flexibility is bought: mean awarded energy per bus and round, per design."""
    buses, lines = network
    last_round = rounds.groupby("run_id")["round"].max()
    first = awards.run_id.map(last_round - window)
    recent = awards[awards["round"] > first].assign(energy=lambda a: a.awarded * a.hours,
                                                    family=lambda a: a["product"].str[0])
    recent["market"] = _label(recent)
    runs = rounds.drop_duplicates("run_id").assign(market=lambda r: _label(r))
    window_rounds = runs.groupby("market").run_id.count() * window  # incl. rounds without awards
    per_bus = recent.groupby(["market", "bus", "family"], as_index=False).energy.sum()
    per_bus["energy"] /= per_bus.market.map(window_rounds)
    per_bus = per_bus.merge(buses, on="bus")
    markets = sorted(recent.market.unique())
    columns = min(4, len(markets))
    rows = -(-len(markets) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.8 * rows), squeeze=False)
    position = buses.set_index("bus")[["x", "y"]]
    ends = lines.join(position, on="from_bus").join(position, on="to_bus", rsuffix="_to")
    scale = 300.0 / max(per_bus.energy.max(), 1e-9) if len(per_bus) else 1.0
    for ax, market in zip(axes.ravel(), markets, strict=False):
        for row in ends.itertuples(index=False):
            ax.plot([row.x, row.x_to], [row.y, row.y_to], color="0.8", linewidth=0.6, zorder=1)
        ax.scatter(buses.x, buses.y, s=3, color="0.6", zorder=2)
        for family, color in (("P", "tab:orange"), ("Q", "tab:blue")):
            mine = per_bus[(per_bus.market == market) & (per_bus.family == family)]
            ax.scatter(mine.x, mine.y, s=mine.energy * scale, color=color, alpha=0.55,
                       label=f"{family} (MWh or MVArh)", zorder=3)
        ax.set(title=market, xticks=[], yticks=[])
    for ax in axes.ravel()[len(markets):]:
        ax.axis("off")
    legend = axes.ravel()[0].legend(fontsize=7, loc="best", title="awarded, area ~ energy")
    for handle in legend.legend_handles:
        handle.set_sizes([40])
    fig.suptitle(f"Where flexibility is bought: mean awarded energy per bus and round "
                 f"(last {window} rounds, all seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def make_plots(tables: dict[str, pd.DataFrame], per_run: pd.DataFrame, folder: Path,
               window: int, network: tuple[pd.DataFrame, pd.DataFrame] | None = None
               ) -> list[Path]:
    """All figures of a study into `folder` (the awards map if bus coordinates exist)."""
    folder.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="paper")
    figures = [learning_curves(tables["agents"], "markup", folder / "learning_markups.png"),
               learning_curves(tables["agents"], "profit", folder / "learning_profits.png"),
               cost_curves(tables["rounds"], folder / "cost_curves.png"),
               design_comparison(per_run, folder / "design_comparison.png")]
    if network is not None and len(tables["awards"]):
        figures.append(awards_map(tables["awards"], tables["rounds"], network, window,
                                  folder / "awards_map.png"))
    return figures
