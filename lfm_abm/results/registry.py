"""The KPI registry: every KPI declared once, with its label, unit, source and aggregation.

The summary, the headline table, the glossary (`lfm-abm run --explain`, README), the
docs check and the plots' axis labels all read this list; `kpis.run_kpis` computes the
simple ones from it and refuses to return a set of KPIs that differs from it, so a KPI
cannot silently vanish from the summary. Formulas and references are in docs/model.md
section 9 under the same names.

Aggregation within a run (over seeds every KPI is summarised as mean and 95 % CI):

* `window`: mean over the last `window` successful rounds (the learnt regime);
* `validated`: mean over the AC-validated rounds of that window;
* `accepted`: over the agent records with an award in the window, weighted by payment
  (Lerner) or awarded energy (markups);
* `all bids`: over every agent record in the window, won or not;
* `derived`: computed from other KPIs of the run;
* `day`: from the market day's structure under truthful offers (same for every round);
* `profile`: the learned profile after the last round, or the strategies played in
  the window (`equilibrium`, `LFMModel.learned_structure`);
* `run`: over the whole run;
* `reference`: learned minus random play on the same seed (`kpis.reference_kpis`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lfm_abm.market.bids import PRODUCTS

#: The range a KPI's value can take: its confidence interval is kept inside it.
NON_NEGATIVE = (0.0, math.inf)
SHARE = (0.0, 1.0)
ANY = (-math.inf, math.inf)
#: (payment - cost) / payment: at most 1; below 0 only if some accepted bid is paid
#: less than its cost (a battery's recharge leg in an hour without need).
LERNER = (-math.inf, 1.0)

AGENT_TYPES = ("pv_inverter", "ev_fleet", "der_aggregator")
FAMILIES = ("P", "Q")
AGGREGATIONS = ("window", "validated", "accepted", "all bids", "derived", "day", "profile",
                "run", "reference")
#: Learning effects: KPI name -> the KPI whose learned-minus-random difference it is.
REFERENCE_KPIS = {"dso_cost_vs_random": "dso_cost", "total_cost_vs_random": "total_cost",
                  "lerner_vs_random": "lerner"}


@dataclass(frozen=True)
class KPI:
    """One KPI: `name` is its column in runs.csv (`<name>_mean`, `<name>_ci` in the summary)."""

    name: str
    label: str  # short column / axis label
    unit: str  # "" for dimensionless
    meaning: str  # one line for the glossary; the formula is in docs/model.md section 9
    table: str  # the run table it reads
    aggregation: str  # one of AGGREGATIONS
    digits: int = 2  # decimals in the headline
    headline: bool = False
    bounds: tuple[float, float] = NON_NEGATIVE  # what the value can be (interval kept in)

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"KPI {self.name}: unknown aggregation {self.aggregation!r}")

    @property
    def title(self) -> str:
        """Label with its unit written short, for table columns."""
        return f"{self.label} {self.unit.replace(' per round', '/round')}".strip()

    @property
    def axis_label(self) -> str:
        """Label with its unit, for plots."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


def _kpis() -> list[KPI]:
    unit_of = {"P": "MWh per round", "Q": "MVArh per round"}
    kinds = {"pv_inverter": "PV", "ev_fleet": "EV fleet", "der_aggregator": "aggregator"}
    return [
        KPI("dso_cost", "DSO cost", "EUR per round", "procurement cost: the sum of payments "
            "to FSPs", "rounds", "window", 1, True),
        KPI("truthful_cost", "truthful cost", "EUR per round", "cost of the same round's "
            "offers cleared at true cost and full capacity (competitive benchmark)",
            "rounds", "window", 1),
        KPI("cost_ratio", "cost / truthful", "", "dso_cost / truthful_cost: 1 = competitive",
            "rounds", "derived", 2, True),
        *[KPI(f"volume_{p}", f"volume {p}", unit_of[p[0]], f"awarded energy of {p}",
              "rounds", "window") for p in PRODUCTS],
        KPI("energy_shifted", "energy shifted", "MWh per round", "energy EV fleets and "
            "shiftable loads defer", "rounds", "window"),
        KPI("rebound_energy", "rebound", "MWh per round", "deferred energy recovered later "
            "in the window", "rounds", "window"),
        KPI("storage_cycles", "storage cycles", "cycles per round", "equivalent full cycles "
            "of the batteries", "rounds", "window"),
        KPI("offers_above_reservation", "offers above cap", "offers per round", "offers "
            "priced above the DSO's reservation price (not admitted)", "rounds", "window"),
        KPI("share_at_cap", "awards at cap", "", "share of accepted energy (MWh and MVArh) "
            "paid at least 95 % of the reservation price (results then depend on the cap)",
            "rounds", "window", bounds=SHARE),
        KPI("share_at_top", "awards at grid top", "", "share of accepted energy bid at the "
            "action grid's highest price level (the reservation price when the grid has the "
            "cap action, else the top markup): where large, the grid's or the cap's top "
            "binds", "agents", "accepted", bounds=SHARE),
        KPI("unmet_need_no_market", "unmet need, no market", "MWh per round", "emergency "
            "action the day needs without any market", "rounds", "window", 3),
        KPI("cost_no_market", "no market", "EUR per round", "what that emergency action "
            "costs: curtailment x curtailment_price + shedding x VOLL (emergency action "
            "alone, at the grid's taps)", "rounds", "window", 1),
        KPI("unmet_need_dso_alone", "unmet need, DSO alone", "MWh per round", "emergency "
            "action the day still needs after the DSO's least-cost tap schedule, on the AC "
            "state at those taps", "rounds", "window", 3),
        KPI("cost_dso_alone", "DSO alone", "EUR per round", "the DSO's own tools, then "
            "emergency action, no market: tap moves x tap_step_cost + the cost of "
            "unmet_need_dso_alone (= cost_no_market on a grid without tap changers); the "
            "counterfactual a design must beat", "rounds", "window", 1),
        KPI("tap_moves_dso_alone", "tap moves, DSO alone", "steps per round", "tap steps "
            "the DSO alone's schedule moves its tap changers over the day, out and back",
            "rounds", "window", 1),
        KPI("tap_moves", "tap moves", "steps per round", "tap steps the DSO moves before "
            "the market (dso_tools = [\"oltc\"]; 0 without)", "rounds", "window", 1),
        KPI("tap_cost", "tap cost", "EUR per round", "tap_moves x tap_step_cost: the wear "
            "of the DSO's tap changers, part of total_cost", "rounds", "window", 1),
        KPI("dayahead_mwh", "day-ahead volume", "MWh per round", "energy providers "
            "schedule in the day-ahead market, sold or bought (NaN without [dayahead])",
            "rounds", "window", 3),
        KPI("inc_dec_mwh", "inc-dec volume", "MWh per round", "energy scheduled in the "
            "day-ahead market and reversed in the local market by the same provider",
            "rounds", "window", 3),
        KPI("unmet_need_no_market_forecast", "unmet need, no market, forecast",
            "MWh per round", "unmet_need_no_market on the forecast, before the day-ahead "
            "market", "rounds", "window", 3),
        KPI("need_created", "need created", "MWh per round", "unmet_need_no_market after "
            "minus before the day-ahead market: the need the schedules created", "rounds",
            "window", 3, bounds=ANY),
        KPI("dayahead_profit", "day-ahead profit", "EUR per round", "providers' profit "
            "from their day-ahead positions: price x position + the value of the energy "
            "moved", "rounds", "window", 1, bounds=ANY),
        KPI("local_profit", "local-market profit", "EUR per round", "what the DSO pays "
            "minus the true cost of what was delivered (a reversal's true cost may be "
            "negative)", "rounds", "window", 1, bounds=ANY),
        KPI("imbalance_cash", "imbalance cash", "EUR per round", "providers' imbalance "
            "settlement of reversals the forecast baseline does not pay", "rounds",
            "window", 1, bounds=ANY),
        KPI("limitation_cost", "limitation cost", "EUR per round", "what the DSO pays "
            "for a capacity limitation before the day-ahead market: the day-ahead profit "
            "providers' truthful positions lose by it (part of dso_cost)", "rounds",
            "window", 1),
        KPI("balance_cost", "balance energy", "EUR per round", "the energy the DSO's "
            "corrections of providers' balances supply, at the day-ahead price (P_down "
            "awards) minus what they take (P_up)", "rounds", "window", 1, bounds=ANY),
        KPI("dso_cost_with_energy", "DSO cost with energy", "EUR per round", "dso_cost "
            "+ balance_cost: payments plus the energy bought to correct providers' "
            "balances", "rounds", "derived", 1, bounds=ANY),
        KPI("unmet_need_before", "unmet need in LP", "MWh per round", "emergency action "
            "the market's LP planned where bids did not suffice", "rounds", "window", 3),
        KPI("unmet_need_after_ac", "unmet need", "MWh per round", "emergency action "
            "(curtailment, load shedding) the DSO needs after AC validation: planned plus "
            "corrective", "rounds", "validated", 3, True),
        KPI("truthful_unmet_need_after_ac", "unmet need, truthful", "MWh per round",
            "the same for the truthful benchmark", "rounds", "validated", 3),
        KPI("corrective_after_ac", "corrective action", "MWh per round", "the corrective "
            "part of unmet_need_after_ac", "rounds", "validated", 3),
        KPI("collateral_after_ac", "collateral action", "MWh per round", "the part of the "
            "corrective action the market's new violations add", "rounds", "validated", 3),
        KPI("curtailed_after_ac", "curtailed", "MWh per round", "the involuntary "
            "curtailment of generation in unmet_need_after_ac", "rounds", "validated", 3),
        KPI("shed_after_ac", "load shed", "MWh per round", "the load shedding in "
            "unmet_need_after_ac", "rounds", "validated", 3),
        KPI("curtailment_cost_after_ac", "curtailment cost", "EUR per round",
            "curtailed_after_ac x curtailment_price: the compensation owed to generators",
            "rounds", "validated", 1),
        KPI("shedding_cost_after_ac", "shedding cost", "EUR per round", "shed_after_ac x "
            "VOLL: the customers' loss", "rounds", "validated", 1),
        KPI("unmet_cost_after_ac", "emergency cost", "EUR per round", "curtailment_cost_"
            "after_ac + shedding_cost_after_ac: what the DSO's emergency action costs",
            "rounds", "validated", 1),
        KPI("violation_cm_after_ac_mva", "CM violation after AC", "MVA", "overload after "
            "awards and planned action, summed over elements and periods", "rounds",
            "validated", 3),
        KPI("violation_vc_after_ac_pu", "VC violation after AC", "p.u.", "voltage outside "
            "the band after awards and planned action, summed", "rounds", "validated", 4),
        KPI("collateral_cm_after_ac_mva", "new CM violation", "MVA", "overload on elements "
            "the baseline did not overload", "rounds", "validated", 3),
        KPI("collateral_vc_after_ac_pu", "new VC violation", "p.u.", "voltage violations "
            "the baseline did not have", "rounds", "validated", 4),
        KPI("total_cost", "total cost", "EUR per round", "dso_cost + unmet_cost_after_ac "
            "+ tap_cost: procurement + curtailment compensation + VOLL x load shed + tap "
            "wear", "rounds",
            "derived", 0, True),
        KPI("lerner", "Lerner", "", "(payment - true cost) / payment over accepted bids: "
            "the aggregate Lerner index, bids weighted by payment (Lerner 1934)", "agents",
            "accepted", 2, True, bounds=LERNER),
        KPI("dso_cost_vs_random", "learned - random DSO cost", "EUR per round", "what "
            "learning did to the DSO cost: dso_cost of the learned run minus that of uniform "
            "random play on the same seed (negative: learners bid lower than chance)",
            "rounds", "reference", 1, True, bounds=ANY),
        KPI("total_cost_vs_random", "learned - random total cost", "EUR per round",
            "total_cost of the learned run minus that of random play on the same seed",
            "rounds", "reference", 0, bounds=ANY),
        KPI("lerner_vs_random", "learned - random Lerner", "", "lerner of the learned run "
            "minus that of random play on the same seed", "agents", "reference", 2, True,
            bounds=ANY),
        *[KPI(f"lerner_{t}_{f}", f"Lerner {kinds[t]} {f}", "", f"the Lerner index of "
              f"accepted {f} bids of {t} FSPs", "agents", "accepted", bounds=LERNER)
          for t in AGENT_TYPES for f in FAMILIES],
        *[KPI(f"markup_{t}_{f}", f"markup {kinds[t]} {f}", "", f"markup over true cost of "
              f"accepted {f} bids of {t} FSPs, weighted by awarded energy (0.5 = +50 %)",
              "agents", "accepted") for t in AGENT_TYPES for f in FAMILIES],
        *[KPI(f"markup_all_{t}", f"markup all {kinds[t]}", "", f"mean markup of all bids "
              f"of {t} FSPs, won or not (secondary: losing bids set no price)", "agents",
              "all bids") for t in AGENT_TYPES],
        KPI("hhi", "HHI per need", "", "Herfindahl-Hirschman index (0-10 000) of the relief "
            "each need receives, by FSP, relief-weighted over needs (10 000 = one FSP)",
            "rounds", "window", 0, bounds=(0.0, 10_000.0)),
        KPI("psi", "PSI", "", "share of periods with needs where some FSP is pivotal: "
            "without it the DSO sheds more load or pays 10 % more (truthful "
            "offers, network-aware re-clearing)", "structure", "day", 2, True, bounds=SHARE),
        KPI("scarcity", "scarcity", "", "share of periods with needs where even every "
            "truthful offer leaves unmet need", "structure", "day", bounds=SHARE),
        KPI("pivotal_fsps", "pivotal FSPs", "FSPs", "FSPs pivotal in at least one period",
            "suppliers", "day", 0),
        KPI("psi_learned", "PSI learned", "", "PSI at the offers learners played most in "
            "the window (their modal actions, first day) instead of truthful offers",
            "structure", "profile", 2, True, bounds=SHARE),
        KPI("pivotal_fsps_learned", "pivotal FSPs learned", "FSPs", "FSPs pivotal in at "
            "least one period at the learned offers", "suppliers", "profile", 0),
        KPI("regret_max", "regret eps greedy", "EUR per round", "largest gain one learner "
            "gets by changing only its own bid from the learned profile, every learner's "
            "greedy action (eps of an eps-Nash equilibrium; distance to equilibrium, not "
            "market power)", "regret", "profile", 1),
        KPI("regret_mean", "regret mean", "EUR per round", "mean of that gain over "
            "learners", "regret", "profile", 1),
        KPI("regret_share", "regret share", "", "mean share of its best-response profit a "
            "learner forgoes", "regret", "profile", bounds=SHARE),
        KPI("profit_gain", "profit gain", "", "Calvano et al.'s Delta: 0 = competitive "
            "Nash, 1 = joint optimum (games of at most 1 000 profiles)", "regret",
            "profile", bounds=ANY),
        KPI("regret_played_max", "regret eps played", "EUR per round", "largest gain one "
            "learner gets by one fixed bid against the others' recorded play in the window "
            "(sampled rounds): eps of the played strategies as a coarse correlated "
            "equilibrium", "regret", "profile", 1, True),
        KPI("regret_played_se", "regret eps played SE", "EUR per round", "standard error "
            "of regret_played_max over the sampled window rounds", "regret", "profile", 1),
        KPI("regret_played_mean", "regret played mean", "EUR per round", "mean over "
            "learners of that gain", "regret", "profile", 1),
        KPI("regret_played_share", "regret played share", "", "share of their best fixed "
            "responses' profit the learners forgo: sum of played regret over sum of (mean "
            "profit + played regret)", "regret", "profile", bounds=SHARE),
        KPI("regret_played_worst_share", "worst learner's regret share", "", "the share of "
            "its best fixed response's profit forgone by the learner with the largest played "
            "regret: regret_played_max over (its mean profit + regret_played_max)", "regret",
            "profile", bounds=SHARE),
        KPI("rounds", "rounds", "rounds", "rounds the run played", "rounds", "run", 0),
        KPI("failed_rounds", "failed rounds", "rounds", "rounds whose clearing or AC "
            "validation failed (left out of every other KPI)", "rounds", "run", 0),
        KPI("rounds_to_stable", "settled after", "round", "first round from which the play "
            "of the learners that earn is settled: it stopped moving and is far from "
            "uniform random play (blocks of 25 rounds; NaN: never)", "agents", "run", 0),
        KPI("converged", "converged", "", "1 if earners' play was settled from the KPI "
            "window's first round on (rounds_to_stable <= rounds - window + 1) and, where "
            "measured, near best responses (regret_played_share <= 0.2), else 0; NaN where "
            "it cannot be judged (under two blocks, or no learner earns); the headline "
            "shows seeds converged / seeds judged. Converged means the choices stopped "
            "moving, not an equilibrium: one learner can still forgo much (warning 'large "
            "regret')", "agents", "derived", 2, True, bounds=SHARE),
        KPI("entropy", "choice entropy", "", "mean normalised entropy of the learners' "
            "choice distributions (1 = uniform, 0 = decided)", "agents", "all bids", bounds=SHARE),
        KPI("earners", "earners", "learners", "learners (FSP x product family) with a "
            "profit in some window round", "agents", "window", 0),
        KPI("entropy_earners", "earners' entropy", "", "mean normalised choice entropy of "
            "the learners that earn in the window (1 = uniform, 0 = decided)", "agents",
            "window", bounds=SHARE),
        KPI("greedy_share", "greedy play", "", "share of the earners' window rounds in "
            "which they played the action they believed best (uniform play: 1/N)",
            "agents", "window", bounds=SHARE),
        KPI("all_greedy_share", "all greedy", "", "share of window rounds in which every "
            "earner played its greedy action", "agents", "window", bounds=SHARE),
    ]


KPIS: dict[str, KPI] = {kpi.name: kpi for kpi in _kpis()}
HEADLINE = tuple(name for name, kpi in KPIS.items() if kpi.headline)
