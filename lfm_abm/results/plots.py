"""Seaborn figures of a study, rebuilt from saved results (never from a new simulation).

* learning_markups.png, learning_profits.png: mean markup and mean profit per FSP by
  agent type vs round, one panel per design; line = mean over seeds, band = 95 % CI.
* cost_curves.png: DSO procurement cost per round by design (log scale) and its ratio to
  the cost of the same round's offers at true cost (1 = competitive).
* design_comparison.png: cost and unmet need after AC validation per design over the
  last-rounds window (mean and 95 % CI over seeds).
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
    for column in ("pricing", "learner"):
        if frame[column].nunique() > 1:
            label = label + " / " + frame[column].astype(str)
    return label


def learning_curves(agents: pd.DataFrame, measure: str, path: Path) -> Path:
    """Mean `measure` (markup or profit) per FSP by agent type vs round, a panel per design."""
    per_seed = (agents.groupby(["design", "pricing", "learner", "seed", "round", "fsp_type"],
                               as_index=False)[measure].mean())
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
              ("unmet_need_after_ac", "unmet need after AC (MW-eq)"),
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


def make_plots(tables: dict[str, pd.DataFrame], per_run: pd.DataFrame, folder: Path) -> list[Path]:
    """All figures of a study into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="paper")
    return [learning_curves(tables["agents"], "markup", folder / "learning_markups.png"),
            learning_curves(tables["agents"], "profit", folder / "learning_profits.png"),
            cost_curves(tables["rounds"], folder / "cost_curves.png"),
            design_comparison(per_run, folder / "design_comparison.png")]
