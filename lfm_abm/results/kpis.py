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
* markup_<type>: mean markup over true cost chosen by FSPs of that type.
* lerner_<type> = sum(payment - true cost) / sum(payment) over awarded bids: the
  volume-weighted Lerner index (price - marginal cost) / price.
* hhi_P, hhi_Q: Herfindahl-Hirschman index (0-10 000) of awarded energy by FSP, per round.
* psi: locational pivotal-supplier index, the share of needs with a pivotal FSP;
  rsi_min: the smallest residual supply index (see `market.structure`).
* rounds_to_stable: first round after which, in every later round, at most 5 % of the
  learners change their greedy action (NaN if strategies never settle).
* entropy: mean normalised entropy of the learners' choice distributions (1 = uniform).

The summary gives, per design x pricing x learner, the mean over seeds and the
half-width of its 95 % confidence interval (Student t; NaN with one seed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

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
STABLE_SHARE = 0.05


def rounds_to_stable(agents: pd.DataFrame) -> float:
    """First round after which at most 5 % of learners change greedy action per round."""
    if agents.empty or "greedy" not in agents:
        return float("nan")
    greedy = agents.pivot_table(index="round", columns=["fsp_id", "family"], values="greedy")
    changed = (greedy.diff().abs() > 0).mean(axis=1).iloc[1:]
    unstable = changed.index[changed > STABLE_SHARE]
    if len(unstable) == 0:
        return float(greedy.index[0])
    last = unstable.max()
    later = greedy.index[greedy.index > last]
    return float(later[0]) if len(later) else float("nan")


def _hhi(awards: pd.DataFrame, family: str) -> float:
    if awards.empty:
        return float("nan")
    rows = awards[awards["product"].str.startswith(family)]
    if rows.empty:
        return float("nan")
    energy = (rows.awarded * rows.hours).groupby([rows["round"], rows.provider_id]).sum()
    share = energy / energy.groupby(level=0).transform("sum")
    return float((share.pow(2).groupby(level=0).sum() * 10_000).mean())


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
    for kind in AGENT_TYPES:
        mine = recent[recent.fsp_type == kind] if len(recent) else recent
        out[f"markup_{kind}"] = float(mine.markup.mean()) if len(mine) else float("nan")
        paid = mine.payment.sum() if len(mine) else 0.0
        out[f"lerner_{kind}"] = float(mine.profit.sum() / paid) if paid > 0 else float("nan")
    out["entropy"] = float(recent.entropy.mean()) if len(recent) else float("nan")
    awards = tables["awards"]
    recent_awards = awards[awards["round"].isin(kept)] if len(awards) else awards
    out["hhi_P"] = _hhi(recent_awards, "P")
    out["hhi_Q"] = _hhi(recent_awards, "Q")
    structure = tables["structure"]
    out["psi"] = float(structure.pivotal.mean()) if len(structure) else float("nan")
    out["rsi_min"] = float(structure.rsi.min()) if len(structure) else float("nan")
    out["rounds_to_stable"] = rounds_to_stable(agents)
    return out


KPI_NAMES = ["dso_cost", "truthful_cost", "cost_ratio", *[f"volume_{p}" for p in PRODUCTS],
             *ENERGY, "offers_above_reservation", "unmet_need_before", *AFTER_AC, "total_cost",
             *[f"markup_{t}" for t in AGENT_TYPES], *[f"lerner_{t}" for t in AGENT_TYPES],
             "hhi_P", "hhi_Q", "psi", "rsi_min", "rounds_to_stable", "entropy"]


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
               "markup_pv_inverter": ("PV markup", 2), "psi": ("PSI", 2),
               "rounds_to_stable": ("stable after", 0)}
    swept = summary["variant"].fillna("").astype(str).ne("").any()
    out = summary[[c for c in GROUP if c != "variant" or swept]].copy()
    for name, (label, digits) in columns.items():
        out[label] = [fmt(m, c, digits) for m, c in
                      zip(summary[f"{name}_mean"], summary[f"{name}_ci"], strict=True)]
    return out
