"""What the study figures draw, aggregated by DuckDB where the records are stored.

Each function returns a small frame (per run and round, per run and FSP, or quantiles)
from the views of `results.lazy.StudyTables`, whose `runs` carry a figure's `market`
label and each run's window: `window_start` (rounds after it are the last `window`
rounds of the run, counted on the rounds table, as the KPIs) and `window_rounds` (how
many rounds the window holds). Curves of runs longer than `lazy.MAX_POINTS` rounds are
means over bins of consecutive rounds (labelled by the bin's first round), so a figure
of 100,000-round runs needs no more memory than one of 2,000.
"""

from __future__ import annotations

import pandas as pd

from lfm_abm.results.lazy import MAX_POINTS, StudyTables


def add_windows(tables: StudyTables, window: int) -> None:
    """Add each run's `window_start` and `window_rounds` to the runs seen."""
    spans = tables.query(f"""
        WITH last AS (SELECT run_id, max(round) AS last FROM rounds GROUP BY run_id)
        SELECT run_id, any_value(last) - {int(window)} AS window_start,
               count(DISTINCT round) FILTER (WHERE round > last - {int(window)})
               AS window_rounds
        FROM rounds JOIN last USING (run_id) GROUP BY run_id""")
    tags = tables.tags.drop(columns=["run_order", "window_start", "window_rounds"],
                            errors="ignore")
    tables.set_runs(tags.merge(spans, on="run_id", how="left"))


def bin_width(tables: StudyTables, table: str = "rounds") -> int:
    """Rounds per point of the curves: 1, or more where runs are longer than MAX_POINTS."""
    longest = tables.query(f"SELECT coalesce(max(round), 1) AS r FROM {table}").r.iloc[0]
    return max(1, -(-int(longest) // MAX_POINTS))


def _bin(tables: StudyTables, table: str) -> str:
    """SQL of a row's curve point: its round, or its bin's first round in long runs."""
    width = bin_width(tables, table)
    return "round" if width == 1 else f"(round - 1) // {width} * {width} + 1"


def round_means(tables: StudyTables, columns: list[str]) -> pd.DataFrame:
    """Per market, run and round (or bin): the mean of `columns` over successful rounds."""
    means = ", ".join(f"avg({c}) AS {c}" for c in columns)
    return tables.query(f"""
        SELECT market, run_id, {_bin(tables, "rounds")} AS round, {means} FROM rounds
        WHERE status = 'ok' GROUP BY ALL ORDER BY run_id, round""")


def accepted_markups(tables: StudyTables) -> pd.DataFrame:
    """Volume-weighted markup of accepted bids per run, round, agent type and family.

    P (MWh) and Q (MVArh) are kept apart, as in the `markup_<type>_<family>` KPIs: their
    volumes do not add.
    """
    sums = tables.query(f"""
        SELECT market, run_id, {_bin(tables, "agents")} AS round, fsp_type, family,
               sum(markup * awarded) AS weighted, sum(awarded) AS awarded
        FROM agents WHERE awarded > 0 GROUP BY ALL ORDER BY run_id, round""")
    return sums.assign(markup=sums.weighted / sums.awarded,
                       curve=sums.fsp_type + " " + sums.family)


def profit_per_fsp(tables: StudyTables) -> pd.DataFrame:
    """Mean profit per FSP (summed over its product families) per run, round and type."""
    return tables.query(f"""
        WITH per_round AS (
            SELECT market, run_id, round, fsp_type,
                   sum(profit) / count(DISTINCT fsp_id) AS profit
            FROM agents GROUP BY ALL)
        SELECT market, run_id, {_bin(tables, "agents")} AS round, fsp_type,
               avg(profit) AS profit FROM per_round GROUP BY ALL ORDER BY run_id, round""")


def lerner_per_round(tables: StudyTables) -> pd.DataFrame:
    """Lerner index of accepted bids per run and round: sum profit / sum payment."""
    sums = tables.query(f"""
        SELECT market, run_id, {_bin(tables, "agents")} AS round, sum(profit) AS profit,
               sum(payment) AS payment
        FROM agents WHERE awarded > 0 GROUP BY ALL ORDER BY run_id, round""")
    return sums.assign(lerner=sums.profit / sums.payment.where(sums.payment > 0))


def learning_per_round(tables: StudyTables) -> pd.DataFrame:
    """Per run and round: mean entropy and greedy-play share of the window's earners.

    Greedy play: the action chosen is the one the learner believed best when choosing
    (its greedy action recorded after the round before). The earners are the learners
    with a profit in the run's window: those whose learning decides the KPIs.
    """
    learner = "run_id, fsp_id, family"
    return tables.query(f"""
        WITH played AS (
            SELECT market, run_id, round, fsp_id, family, entropy, profit, window_start,
                   lag(greedy) OVER (PARTITION BY {learner} ORDER BY round) AS believed,
                   action FROM agents),
        earners AS (
            SELECT {learner} FROM played WHERE round > window_start
            GROUP BY ALL HAVING max(profit) > 0)
        SELECT market, run_id, {_bin(tables, "agents")} AS round, avg(entropy) AS entropy,
               avg(CAST(action = believed AS DOUBLE)) AS played_greedy
        FROM played JOIN earners USING ({learner}) WHERE believed IS NOT NULL
        GROUP BY ALL ORDER BY run_id, round""")


def window_profits(tables: StudyTables) -> pd.DataFrame:
    """Mean profit per FSP and round over the window, per run and FSP."""
    return tables.query("""
        SELECT market, run_id, fsp_id, fsp_type,
               sum(profit) / any_value(window_rounds) AS profit
        FROM agents WHERE round > window_start GROUP BY ALL ORDER BY run_id, fsp_id""")


def window_costs(tables: StudyTables) -> pd.DataFrame:
    """Per run: true cost of the accepted bids and FSP rent per round of the window."""
    return tables.query("""
        SELECT run_id, sum(true_cost) / any_value(window_rounds) AS true_cost,
               sum(profit) / any_value(window_rounds) AS rent
        FROM agents WHERE round > window_start GROUP BY run_id""")


def price_boxes(tables: StudyTables) -> pd.DataFrame:
    """Box-plot statistics of accepted bids' locational prices per market and product.

    Over the window's awards of every seed: quartiles, mean and whiskers at the most
    extreme prices within 1.5 interquartile ranges of the box (matplotlib's rule).
    """
    return tables.query("""
        WITH window_awards AS (
            SELECT market, product, locational_price AS price FROM awards
            WHERE round > window_start AND price IS NOT NULL),
        quartiles AS (
            SELECT market, product, quantile_cont(price, 0.25) AS q1,
                   quantile_cont(price, 0.5) AS med, quantile_cont(price, 0.75) AS q3,
                   avg(price) AS mean FROM window_awards GROUP BY ALL)
        SELECT market, product, any_value(q1) AS q1, any_value(med) AS med,
               any_value(q3) AS q3, any_value(mean) AS mean,
               min(price) FILTER (WHERE price >= q1 - 1.5 * (q3 - q1)) AS whislo,
               max(price) FILTER (WHERE price <= q3 + 1.5 * (q3 - q1)) AS whishi
        FROM window_awards JOIN quartiles USING (market, product) GROUP BY ALL""")


def awards_per_bus(tables: StudyTables) -> pd.DataFrame:
    """Mean awarded energy per market, bus and family per round of the window."""
    return tables.query("""
        WITH per_market AS (SELECT market, sum(window_rounds) AS rounds FROM runs
                            WHERE run_id IN (SELECT DISTINCT run_id FROM rounds)
                            GROUP BY market)
        SELECT market, bus, left(product, 1) AS family,
               sum(awarded * hours) / any_value(per_market.rounds) AS energy
        FROM awards JOIN per_market USING (market) WHERE round > window_start
        GROUP BY ALL ORDER BY market, bus, family""")


def stack_offers(tables: StudyTables, ranked: list[str]) -> pd.DataFrame:
    """The offers of the first run (lowest seed) of the best-ranked market that has any."""
    runs = tables.query("SELECT DISTINCT market, run_id, seed FROM offers")
    for market in ranked:
        mine = runs[runs.market == market]
        if len(mine):
            run_id = mine.sort_values(["seed", "run_id"]).run_id.iloc[0]
            return tables.query("SELECT * FROM offers WHERE run_id = ?", [run_id])
    return pd.DataFrame()
