"""Example: load a study's results with `load_results` and draw a plot lfm-abm does not.

The plot: the aggregate Lerner index of accepted bids, (payment - true cost) / payment,
round by round, one line per seed and a panel per design, for the learned runs.
`plots/market_power.png` shows its mean over seeds; this shows whether the seeds agree.
The records stay on disk: one SQL query (DuckDB, over every run's agents table) returns
only the points drawn. If the study folder has no results yet, the quick study
(studies/quick.toml) is run first.

    python studies/example_plot.py [OUT_DIR] [--rounds N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import seaborn as sns

from lfm_abm import load_results
from lfm_abm.results.kpis import REFERENCES

HERE = Path(__file__).resolve().parent


def ensure_results(out: Path, rounds: int | None) -> None:
    """Run the quick study into `out` unless it already holds finished runs."""
    if (out / "manifest.json").is_file():
        return
    from lfm_abm.study import load_study, run_study

    run_study(load_study(HERE / "quick.toml", rounds=rounds, out=str(out)), progress=False)


def main() -> None:
    """Make `plots/lerner_by_round.png` in the study folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="out/quick", help="a study output folder")
    parser.add_argument("--rounds", type=int, help="rounds if the quick study must be run")
    args = parser.parse_args()
    out = Path(args.out)
    ensure_results(out, args.rounds)
    references = ", ".join(f"'{name}'" for name in REFERENCES)
    lerner = load_results(out).query(f"""
        SELECT design AS market, seed, round,
               sum(profit) / nullif(sum(payment), 0) AS lerner
        FROM agents WHERE awarded > 0 AND learner NOT IN ({references})
        GROUP BY ALL ORDER BY market, seed, round""")
    grid = sns.relplot(data=lerner, x="round", y="lerner", hue="seed", col="market",
                       col_wrap=min(4, lerner.market.nunique()), kind="line", height=2.8,
                       palette="tab10", linewidth=1)
    grid.set_axis_labels("round", "Lerner index (payment - true cost) / payment")
    grid.set_titles(col_template="{col_name}")
    grid.figure.suptitle("Market power as FSPs learn, seed by seed", y=1.03)
    path = out / "plots" / "lerner_by_round.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.savefig(path, dpi=110, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
