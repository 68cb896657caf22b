"""Example: load a study's results with `load_results` and draw a plot lfm-abm does not.

The plot: how the aggregate Lerner index, (payment - true cost) / payment over the
awarded bids of a round, evolves as FSPs learn, by design. If the study folder has no
results yet, the quick study (studies/quick.toml) is run first.

    python studies/example_plot.py [OUT_DIR] [--rounds N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from lfm_abm import load_results

HERE = Path(__file__).resolve().parent


def ensure_results(out: Path, rounds: int | None) -> None:
    """Run the quick study into `out` unless it already holds finished runs."""
    if (out / "manifest.json").is_file():
        return
    from lfm_abm.study import load_study, run_study

    run_study(load_study(HERE / "quick.toml", rounds=rounds, out=str(out)), progress=False)


def lerner_by_round(agents: pd.DataFrame) -> pd.DataFrame:
    """Aggregate Lerner index (rent over payment) per design, seed and round with payments."""
    paid = agents.groupby(["design", "seed", "round"])[["profit", "payment"]].sum()
    paid = paid[paid.payment > 0]
    return (paid.profit / paid.payment).rename("lerner").reset_index()


def main() -> None:
    """Make `plots/lerner_by_round.png` in the study folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="out/quick", help="a study output folder")
    parser.add_argument("--rounds", type=int, help="rounds if the quick study must be run")
    args = parser.parse_args()
    out = Path(args.out)
    ensure_results(out, args.rounds)
    lerner = lerner_by_round(load_results(out).agents)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.lineplot(data=lerner, x="round", y="lerner", hue="design", errorbar=("ci", 95),
                 n_boot=200, seed=0, ax=ax)
    ax.set(xlabel="round", ylabel="Lerner index (payment - true cost) / payment",
           title="Market power as FSPs learn (mean and 95 % CI over seeds)")
    path = out / "plots" / "lerner_by_round.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
