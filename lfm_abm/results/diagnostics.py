"""Warnings about a study's results, each with what to do about it.

A number is only as good as the regime it averages: learning that has not settled, a
learned outcome that cannot be told from random play, a KPI window that includes the
first rounds, unmet need that truthful bidding leaves too (so it is not strategic), or
prices pinned at the DSO's cap or at the action grid's top (so they measure the cap or
the grid, not the market) are said next to the table, not left for the reader to find.
Warnings are about the learned settings; the reference runs are their yardstick.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from lfm_abm.learning.convergence import BLOCK, NEAR_BEST
from lfm_abm.market.designs import parse_design
from lfm_abm.results.kpis import learned_rows, setting_labels

#: Truthful unmet need above this share of the emergency action the day needs without a
#: market (at the DSO's taps where the design uses them) is flagged.
TRUTHFUL_UNMET_SHARE = 0.10
#: Accepted energy paid the reservation price above this share is flagged.
AT_CAP_SHARE = 0.10
#: Accepted energy bid at the action grid's top level above this share is flagged.
AT_TOP_SHARE = 0.05
#: Played regret (eps, EUR per round) above this share of the DSO cost is flagged ...
REGRET_OF_COST = 0.10
#: ... and above this share if that learner also forgoes more than NEAR_BEST of its best
#: response (a learner earning cents that could earn a few more is no finding).
MATERIAL_REGRET = 0.02
#: Fewer seeds per setting than this are flagged: their intervals say little.
MIN_SEEDS = 4


@dataclass(frozen=True)
class Diagnostic:
    """One warning: what was found, in which settings, and the fix."""

    kind: str
    found: str
    fix: str

    def lines(self) -> list[str]:
        """Printable lines: the finding, then the fix indented."""
        return [f"warning ({self.kind}): {self.found}", f"  fix: {self.fix}"]


def _not_converged(summary: pd.DataFrame, rounds: int, window: int) -> list[Diagnostic]:
    flagged = summary.converged_mean < 1  # NaN (cannot be judged) is not flagged
    if not flagged.any():
        return []
    rows = summary[flagged]
    parts = [f"{label} ({round((1 - c) * n)}/{n} seeds)" for label, c, n in
             zip(setting_labels(summary)[flagged], rows.converged_mean,
                 rows.converged_seeds, strict=True)]
    return [Diagnostic(
        "not converged",
        f"the earners' play was not settled from the KPI window's first round on (last "
        f"{window} of {rounds} rounds; blocks of {BLOCK} rounds), or its played strategies "
        f"forgo more than {NEAR_BEST:.0%} of their best responses' profit, in "
        f"{', '.join(parts)}: their KPIs describe learning in progress or a lock-in, not "
        "an equilibrium (runs.csv: rounds_to_stable, regret_played_share)",
        f"run more rounds, e.g. `lfm-abm run STUDY --rounds {2 * rounds}`; if the regret "
        "stays, the learners locked in early (a larger initial propensity, docs/model.md "
        "8.3), so read these rows as where learning stopped")]


def _large_regret(summary: pd.DataFrame) -> list[Diagnostic]:
    """Settings where one learner could still gain much by one fixed bid, converged or not.

    The "converged" test weighs every learner's regret together; an eps above
    REGRET_OF_COST of the DSO cost, or above MATERIAL_REGRET of it from a learner that
    forgoes more than NEAR_BEST of its best response's profit, is said here.
    """
    worst = summary.regret_played_worst_share_mean
    of_cost = summary.regret_played_max_mean / summary.dso_cost_mean
    flagged = ((of_cost > REGRET_OF_COST)  # NaN: not measured
               | ((worst > NEAR_BEST) & (of_cost > MATERIAL_REGRET)))
    if not flagged.any():
        return []
    parts = [f"{label} (eps {eps:.1f} EUR/round: {share:.0%} of that learner's best "
             f"response, {cost:.0%} of the DSO cost)" for label, eps, share, cost in zip(
                 setting_labels(summary)[flagged], summary.regret_played_max_mean[flagged],
                 worst[flagged], of_cost[flagged], strict=True)]
    return [Diagnostic(
        "large regret",
        f"a learner could still gain much by one fixed bid against the others' play in "
        f"{', '.join(parts)} (thresholds: eps above {REGRET_OF_COST:.0%} of the DSO cost, "
        f"or above {MATERIAL_REGRET:.0%} of it from a learner forgoing more than "
        f"{NEAR_BEST:.0%} of its best response): the played strategies are not near an "
        "equilibrium, whatever 'converged' says (that is about choices that stopped moving)",
        "run more rounds or more seeds; runs.csv (regret_played_max, "
        "regret_played_worst_share) and the regret table name the learner and its better bid")]


def _few_seeds(summary: pd.DataFrame) -> list[Diagnostic]:
    fewest = int(summary.seeds.min()) if len(summary) else MIN_SEEDS
    if fewest >= MIN_SEEDS:
        return []
    return [Diagnostic(
        "few seeds",
        f"{fewest} seed(s) per setting: a 95 % interval from so few seeds (Student t on the "
        "seed means) is wide and assumes those means are normal; it is cut at what the "
        "quantity can be (shown as [low, high]), and a study this small is a smoke test, "
        "not a result",
        f"`lfm-abm run STUDY --seeds {2 * MIN_SEEDS}` (at least {MIN_SEEDS})")]


def _window(rounds: int, window: int) -> list[Diagnostic]:
    if window < rounds:
        return []
    return [Diagnostic(
        "window", f"the KPI window ({window} rounds) is not shorter than the run ({rounds} "
        "rounds): the KPIs average the first rounds, learning from scratch, too",
        f"set `window` in [study] below `rounds`, e.g. {max(1, rounds // 4)}")]


def _truthful_unmet(summary: pd.DataFrame, need_services: set[str], grid: str
                    ) -> list[Diagnostic]:
    """Unmet need truthful bids leave as well, grouped by its likely cause.

    Measured against the need of the design's own day without a market: after the DSO's
    taps where the design uses them (`dso_tools`), else at the grid's taps.
    """
    without = summary.unmet_need_no_market_mean
    if "tap_moves_mean" in summary and "unmet_need_dso_alone_mean" in summary:
        tapped = summary.tap_moves_mean.fillna(0) > 0
        without = without.where(~tapped, summary.unmet_need_dso_alone_mean)
    share = summary.truthful_unmet_need_after_ac_mean / without
    flagged = (share > TRUTHFUL_UNMET_SHARE) & (summary.truthful_unmet_need_after_ac_mean > 1e-3)
    rows = summary[flagged]
    by_cause: dict[str, list[str]] = {}
    for label, row, need in zip(setting_labels(summary)[flagged],
                                rows.itertuples(index=False), without[flagged], strict=True):
        missing = need_services - set(parse_design(row.design).services)
        if missing:
            cause = f"unbought: the design does not buy {'/'.join(sorted(missing))}"
        elif row.scarcity_mean > 0:
            cause = "scarce: even every admitted offer leaves need in some periods"
        else:
            cause = ("chosen or linearisation: the LP planned emergency action cheaper than "
                     "the offers (least-cost priority), or believes the need solved")
        by_cause.setdefault(cause, []).append(
            f"{label} ({row.truthful_unmet_need_after_ac_mean:.3f} of {need:.3f} MWh)")
    fixes = {"unbought": "compare with a design that buys every service the day needs; "
                         "this unmet need is the design's, not the bidders'",
             "scarce": "more supply at the needs' buses (a denser population), or a design "
                       "admitting the products that relieve them (plots/supply_stack.png, "
                       "network/relief.parquet), or accept the emergency action as the cost "
                       "of scarcity",
             "chosen or linearisation": "`unmet_need_before` (planned by the LP) against "
                              "`corrective_after_ac` tells the two apart; a sweep of "
                              "`market.curtailment_price` or `emergency_priority = "
                              "\"market-first\"` shows the chosen part; "
                              f"`lfm-abm validate --grid {grid} --design DESIGN` quantifies "
                              "the linearisation error and `relinearise = 2` under [market] "
                              "re-clears the AC residual"}
    return [Diagnostic(
        "unmet under truthful bids",
        f"{', '.join(settings)}: truthful offers leave more than "
        f"{TRUTHFUL_UNMET_SHARE:.0%} of the emergency action their day needs without a "
        f"market unmet after AC validation ({cause})", fixes[cause.split(":")[0]])
        for cause, settings in by_cause.items()]


def _shares_above(summary: pd.DataFrame, column: str, threshold: float) -> list[str]:
    """'setting (share)' of every row whose `column` exceeds `threshold`."""
    flagged = summary[column] > threshold
    return [f"{label} ({share:.0%})" for label, share in
            zip(setting_labels(summary)[flagged], summary[column][flagged], strict=True)]


def _at_cap(summary: pd.DataFrame) -> list[Diagnostic]:
    parts = _shares_above(summary, "share_at_cap_mean", AT_CAP_SHARE)
    if not parts:
        return []
    return [Diagnostic(
        "price cap", f"a large share of accepted energy is paid within 5 % of the "
        f"reservation price in "
        f"{', '.join(parts)}: prices and costs there measure the cap, not the market",
        "sweep it: `\"market.reservation_price\" = [...]` (or `\"market.voll\"`, which it "
        "follows by default) under [sweep]")]


def _like_random(summary: pd.DataFrame) -> list[Diagnostic]:
    """Settings whose learned DSO cost and Lerner index both stay within random play's CI."""
    if "dso_cost_vs_random_mean" not in summary or summary.dso_cost_vs_random_mean.isna().all():
        return []
    flagged, single = [], []
    for label, row in zip(setting_labels(summary), summary.itertuples(index=False),
                          strict=True):
        if pd.isna(row.dso_cost_vs_random_mean):
            continue
        if pd.isna(row.dso_cost_vs_random_ci):
            single.append(label)
            continue
        if all(abs(getattr(row, f"{name}_mean")) <= getattr(row, f"{name}_ci")
               or pd.isna(getattr(row, f"{name}_mean"))
               for name in ("dso_cost_vs_random", "lerner_vs_random")):
            flagged.append(f"{label} (DSO cost {row.dso_cost_vs_random_mean:+.1f} ± "
                           f"{row.dso_cost_vs_random_ci:.1f} EUR/round)")
    out = []
    if flagged:
        out.append(Diagnostic(
            "like random play", f"learned outcome cannot be told from uniform random play "
            f"on the same seeds in {', '.join(flagged)}: the 95 % CIs of learned - random "
            "DSO cost and Lerner index both contain 0",
            "more seeds narrow the CIs; if it persists, the learners did not learn what pays "
            "here (plots/learning.png: entropy and greedy play of the earners)"))
    if single:
        out.append(Diagnostic(
            "like random play", f"one seed only in {', '.join(single)}: learned - random "
            "has no CI, so learning cannot be told from chance",
            "run more seeds, e.g. `lfm-abm run STUDY --seeds 4`"))
    return out


def _at_top(summary: pd.DataFrame, cap_action: bool) -> list[Diagnostic]:
    parts = _shares_above(summary, "share_at_top_mean", AT_TOP_SHARE)
    if not parts:
        return []
    if cap_action:
        found = ("bid at the reservation price (the grid's cap action) in "
                 f"{', '.join(parts)}: these prices are set by the DSO's cap, not by rivals")
        fix = ("sweep the reservation price (`\"market.reservation_price\" = [...]` under "
               "[sweep]) to see how the results move with it")
    else:
        found = (f"bid at the grid's top markup in {', '.join(parts)}: learners there would "
                 "bid higher if the grid let them, so these prices are the grid's")
        fix = ("add the cap action (`cap_action = true` under [actions]) or higher markups, "
               "so bids can reach the reservation price")
    return [Diagnostic("grid top", f"more than {AT_TOP_SHARE:.0%} of accepted energy is "
                       f"{found}", fix)]


def diagnose(summary: pd.DataFrame, study: dict, needs: pd.DataFrame | None
             ) -> list[Diagnostic]:
    """Every warning about a study's summary (`needs`: the day's baseline needs, if saved).

    Only learned settings are judged: the reference runs are what they are compared with.
    """
    rounds, window = int(study["rounds"]), int(study["window"])
    services = set(needs.service) if needs is not None and len(needs) else set()
    summary = learned_rows(summary)
    cap_action = study.get("actions", {}).get("cap_action", True)
    return [*_few_seeds(summary), *_not_converged(summary, rounds, window),
            *_large_regret(summary),
            *_like_random(summary),
            *_window(rounds, window), *_truthful_unmet(summary, services, study["grid"]),
            *_at_cap(summary), *_at_top(summary, cap_action)]
