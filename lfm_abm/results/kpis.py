"""Key performance indicators of runs and their summary over seeds.

Per run, over the last `window` rounds (the learnt regime):

* dso_cost, truthful_cost (EUR per round): procurement cost and the cost of the same
  round's offers cleared at true cost (the competitive benchmark); cost_ratio = their
  ratio of means.
* volume_<product> (MWh or MVArh per round).
* unmet_need_before: the DSO's emergency action (MWh of involuntary curtailment and
  load shedding) the LP itself needed; unmet_need_after_ac: that planned action plus
  the least corrective action fixing the AC state after it (MWh, validated rounds only);
  corrective_after_ac: the corrective part; collateral_after_ac: the part of the
  corrective action the market's new violations add;
  unmet_cost_after_ac = VOLL x unmet_need_after_ac (EUR per round); total_cost =
  dso_cost + unmet_cost_after_ac, what the DSO pays plus what its emergency action costs.
* violation_cm_after_ac_mva, violation_vc_after_ac_pu and their collateral parts: the
  AC violations themselves, in their own units (summed over elements and periods).
* offers_above_reservation: offers not admitted because they were dearer than the DSO's
  reservation price (per round).
* energy_shifted, rebound_energy (MWh per round): energy EV fleets and shiftable loads
  defer, and recover later in their window; storage_cycles: equivalent full cycles of
  the batteries per round, awarded throughput / (2 x energy capacity).
* lerner_<type>_<family> = sum(payment - true cost) / sum(payment) over the accepted
  bids of FSPs of that type in product family P or Q: the volume-weighted Lerner index
  (price - marginal cost) / price (Lerner 1934); lerner: the same over all accepted bids.
* markup_<type>_<family>: markup over true cost of accepted bids, weighted by awarded
  energy; markup_all_<type>: mean markup chosen by all FSPs of the type, won or not
  (secondary: losing bids' markups set no price).
* hhi: Herfindahl-Hirschman index (0-10 000) of accepted relief per need and period,
  relief-weighted mean over needs (`market.concentration`), averaged over rounds.
* psi: share of the periods with needs that have a pivotal supplier, network-aware
  (re-clearing without each supplier under truthful offers, `market.structure`);
  scarcity: share of those periods that lack supply even with every offer;
  pivotal_fsps: number of FSPs pivotal in at least one period.
* regret_max, regret_mean (EUR per round): best gain of a learner from a unilateral
  deviation from the run's learned profile (`equilibrium`), the eps of an eps-Nash
  equilibrium; regret_share: mean share of best-response profit forgone;
  profit_gain: Calvano et al.'s Delta where the game is small enough to enumerate.
* rounds_to_stable: first round from which the choice distributions of the learners
  that earn stop moving (`learning.convergence`; NaN if they never settle).
* entropy: mean normalised entropy of the learners' choice distributions (1 = uniform).

The summary gives, per design x pricing x learner, the mean over seeds and the
half-width of its 95 % confidence interval (Student t; NaN with one seed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from lfm_abm.learning.convergence import rounds_to_stable
from lfm_abm.market.bids import PRODUCTS

GROUP = ["design", "pricing", "learner", "variant"]
#: Round columns that exist only for AC-validated rounds.
AFTER_AC = ("unmet_need_after_ac", "corrective_after_ac", "collateral_after_ac",
            "unmet_cost_after_ac",
            "violation_cm_after_ac_mva", "violation_vc_after_ac_pu",
            "collateral_cm_after_ac_mva", "collateral_vc_after_ac_pu")
AGENT_TYPES = ("pv_inverter", "ev_fleet", "der_aggregator")
#: Round columns of energy-limited flexibility (`market.energy.energy_kpis`).
ENERGY = ("energy_shifted", "rebound_energy", "storage_cycles")
FAMILIES = ("P", "Q")


def _market_power(agents: pd.DataFrame) -> dict[str, float]:
    """Lerner indices and markups of accepted bids per agent type and product family."""
    out: dict[str, float] = {}
    won = agents[agents.awarded > 0] if len(agents) else agents
    for kind in AGENT_TYPES:
        mine = agents[agents.fsp_type == kind] if len(agents) else agents
        out[f"markup_all_{kind}"] = float(mine.markup.mean()) if len(mine) else float("nan")
        for family in FAMILIES:
            rows = won[(won.fsp_type == kind) & (won.family == family)] if len(won) else won
            out[f"lerner_{kind}_{family}"] = _lerner(rows)
            out[f"markup_{kind}_{family}"] = (
                float(np.average(rows.markup, weights=rows.awarded)) if len(rows)
                else float("nan"))
    out["lerner"] = _lerner(won)
    return out


def _lerner(rows: pd.DataFrame) -> float:
    paid = rows.payment.sum() if len(rows) else 0.0
    return float(rows.profit.sum() / paid) if paid > 0 else float("nan")


def run_kpis(tables: dict[str, pd.DataFrame], window: int) -> dict[str, float]:
    """KPIs of one run over its last `window` successful rounds."""
    rounds = tables["rounds"]
    ok = rounds[rounds.status == "ok"] if "status" in rounds else rounds
    last = ok[ok["round"] > ok["round"].max() - window] if len(ok) else ok
    kept = set(last["round"])
    out: dict[str, float] = {"rounds": float(rounds["round"].max()) if len(rounds) else 0.0,
                             "failed_rounds": float((rounds.status != "ok").sum())
                             if "status" in rounds else 0.0}
    for column in ("dso_cost", "truthful_cost", "unmet_need_before", "offers_above_reservation",
                   *[f"volume_{p}" for p in PRODUCTS], *ENERGY):
        out[column] = float(last[column].mean()) if len(last) else float("nan")
    validated = last[last.ac_validated.astype(bool)] if len(last) else last
    for column in AFTER_AC:
        out[column] = float(validated[column].mean()) if len(validated) else float("nan")
    out["total_cost"] = out["dso_cost"] + out["unmet_cost_after_ac"]
    out["cost_ratio"] = (out["dso_cost"] / out["truthful_cost"] if out["truthful_cost"] > 0
                         else float("nan"))
    agents = tables["agents"]
    recent = agents[agents["round"].isin(kept)] if len(agents) else agents
    out["entropy"] = float(recent.entropy.mean()) if len(recent) else float("nan")
    out.update(_market_power(recent))
    out["hhi"] = float(last.hhi.mean()) if len(last) else float("nan")
    structure, suppliers = tables["structure"], tables["suppliers"]
    out["psi"] = float(structure.pivotal.mean()) if len(structure) else float("nan")
    out["scarcity"] = float(structure.scarce.mean()) if len(structure) else float("nan")
    out["pivotal_fsps"] = (float(suppliers.provider_id[suppliers.pivotal].nunique())
                           if len(suppliers) else float("nan"))
    regret = tables["regret"]
    if len(regret):  # the learned profile at the end; earlier rounds are for curves
        regret = regret[regret["round"] == regret["round"].max()]
    out["regret_max"] = float(regret.regret.max()) if len(regret) else float("nan")
    out["regret_mean"] = float(regret.regret.mean()) if len(regret) else float("nan")
    out["regret_share"] = float(regret.regret_share.mean()) if len(regret) else float("nan")
    out["profit_gain"] = (float(regret.profit_gain.iloc[0]) if "profit_gain" in regret
                          and len(regret) else float("nan"))
    out["rounds_to_stable"] = rounds_to_stable(agents)
    return out


KPI_NAMES = ["dso_cost", "truthful_cost", "cost_ratio", *[f"volume_{p}" for p in PRODUCTS],
             *ENERGY, "offers_above_reservation", "unmet_need_before", *AFTER_AC, "total_cost",
             "lerner", *[f"lerner_{t}_{f}" for t in AGENT_TYPES for f in FAMILIES],
             *[f"markup_{t}_{f}" for t in AGENT_TYPES for f in FAMILIES],
             *[f"markup_all_{t}" for t in AGENT_TYPES], "hhi", "psi", "scarcity",
             "pivotal_fsps", "regret_max", "regret_mean", "regret_share", "profit_gain",
             "rounds_to_stable", "entropy"]


def summarise(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95 % CI half-width over seeds of every KPI, per design x pricing x learner."""
    rows = []
    for key, group in per_run.groupby(GROUP, sort=False, dropna=False):
        row = dict(zip(GROUP, key, strict=True))
        row["seeds"] = len(group)
        for name in KPI_NAMES:
            values = group[name].dropna().to_numpy(dtype=float)
            row[f"{name}_mean"] = float(values.mean()) if len(values) else float("nan")
            if len(values) > 1:
                half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1)
                row[f"{name}_ci"] = float(half / np.sqrt(len(values)))
            else:
                row[f"{name}_ci"] = float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def headline(summary: pd.DataFrame) -> pd.DataFrame:
    """The few columns a reader looks at first, formatted as 'mean +- ci'."""
    def fmt(mean: float, ci: float, digits: int) -> str:
        if np.isnan(mean):
            return "-"
        return f"{mean:.{digits}f}" if np.isnan(ci) else f"{mean:.{digits}f} ± {ci:.{digits}f}"

    columns = {"dso_cost": ("DSO cost EUR", 1), "cost_ratio": ("cost / truthful", 2),
               "unmet_need_after_ac": ("unmet after AC MWh", 3),
               "total_cost": ("cost + VOLL x unmet EUR", 0),
               "lerner": ("Lerner (accepted)", 2), "hhi": ("HHI per need", 0),
               "psi": ("PSI", 2), "regret_max": ("regret eps EUR", 1),
               "rounds_to_stable": ("stable after", 0)}
    swept = summary["variant"].fillna("").astype(str).ne("").any()
    out = summary[[c for c in GROUP if c != "variant" or swept]].copy()
    for name, (label, digits) in columns.items():
        out[label] = [fmt(m, c, digits) for m, c in
                      zip(summary[f"{name}_mean"], summary[f"{name}_ci"], strict=True)]
    return out
