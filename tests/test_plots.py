"""The study figures: every figure is written from saved-results tables; absent data skip."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from lfm_abm.errors import InputError
from lfm_abm.learning import ActionGrid
from lfm_abm.results.kpis import setting_labels, varying_settings
from lfm_abm.results.lazy import StudyTables
from lfm_abm.results.plot_data import add_windows, window_costs
from lfm_abm.results.plots import (
    _fmt_sum,
    _short,
    best_of_groups,
    cost_components,
    line_styles,
    make_plots,
    order_by_total_cost,
    palette,
)
from lfm_abm.results.store import NetworkData

DESIGNS = ("CM_P", "CMVC_PQ")
SEEDS = (0, 1)
ROUNDS = 6
FSPS = (("pv_1", "pv_inverter", 1), ("ev_1", "ev_fleet", 2), ("agg_1", "der_aggregator", 3))
ALL_FIGURES = {"design_comparison.png", "markups_accepted.png", "learning_profits.png",
               "cost_curves.png", "market_power.png", "profits.png", "surplus_split.png",
               "supply_stack.png", "locational_prices.png", "awards_map.png",
               "sweep_voll.png", "learning.png"}


def _runs() -> list[dict]:
    return [{"run_id": f"{d}_v{v:g}_s{s}", "design": d, "pricing": "pay-as-bid",
             "learner": "roth-erev", "variant": f"voll={v:g}", "seed": s, "voll": v}
            for d, v, s in itertools.product(DESIGNS, (300.0, 3000.0), SEEDS)]


def _tables() -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    rng = np.random.default_rng(0)
    rounds, agents, awards, offers, per_run = [], [], [], [], []
    for run in _runs():
        expensive = run["design"] == "CM_P"
        for number in range(1, ROUNDS + 1):
            cost = rng.uniform(50, 80) * (10 if expensive else 1)
            rounds.append({**run, "round": number, "status": "ok", "dso_cost": cost,
                           "truthful_cost": cost / 1.3, "cost_ratio": 1.3,
                           "hhi": rng.uniform(2000, 9000),
                           "unmet_need_after_ac": 1.0 if expensive else 0.0,
                           "unmet_cost_after_ac": run["voll"] if expensive else 0.0,
                           "shedding_cost_after_ac": run["voll"] if expensive else 0.0,
                           "curtailment_cost_after_ac": 0.0,
                           "ac_validated": True})
            for (fsp, kind, bus), family in itertools.product(FSPS, "PQ"):
                action = int(rng.integers(4))
                markup = (0.0, 0.25, 0.5, 1.0)[action]
                awarded = rng.uniform(0.1, 1.0)
                true_cost = 40.0 * awarded
                agents.append({**run, "round": number, "fsp_id": fsp, "fsp_type": kind,
                               "family": family, "markup": markup, "offered": 1.0,
                               "awarded": awarded, "payment": true_cost * (1 + markup),
                               "true_cost": true_cost, "profit": true_cost * markup,
                               "entropy": 0.5, "action": action, "greedy": 1})
                product = f"{family}_down"
                price = 40.0 * (1 + markup)
                row = {**run, "round": number, "bid_id": f"{fsp}/{family}/{number}",
                       "provider_id": fsp, "bus": bus, "period": 1, "product": product,
                       "quantity": 1.0, "price": price, "hours": 1.0, "awarded": awarded,
                       "payment": price * awarded, "price_paid": price,
                       "locational_price": price + 5, "stage": 0}
                awards.append(row)
                if number in (1, ROUNDS):
                    offers.append({**row, "fsp_type": kind, "cost": 40.0})
                    offers.append({**row, "bid_id": row["bid_id"] + "/b", "price": 2 * price,
                                   "fsp_type": kind, "cost": 45.0, "awarded": 0.0})
        dso = 500.0 if expensive else 60.0
        unmet = run["voll"] if expensive else 0.0
        per_run.append({**run, "dso_cost": dso, "truthful_cost": dso / 1.3, "cost_ratio": 1.3,
                        "unmet_need_after_ac": 1.0 if expensive else 0.0,
                        "unmet_cost_after_ac": unmet, "total_cost": dso + unmet,
                        "shedding_cost_after_ac": unmet, "curtailment_cost_after_ac": 0.0,
                        "lerner": 0.3, "hhi": 5000.0})
    tables = {"rounds": pd.DataFrame(rounds), "agents": pd.DataFrame(agents),
              "awards": pd.DataFrame(awards), "offers": pd.DataFrame(offers)}
    return tables, pd.DataFrame(per_run)


def _network() -> NetworkData:
    buses = pd.DataFrame({"bus": [0, 1, 2, 3], "name": ["a", "b", "c", "d"],
                          "x": [0.0, 1.0, 2.0, 2.0], "y": [0.0, 0.0, 0.0, 1.0]})
    lines = pd.DataFrame({"from_bus": [0, 1, 2], "to_bus": [1, 2, 3]})
    needs = pd.DataFrame({"need_id": [0, 1], "period": [1, 1], "service": ["CM", "VC"],
                          "element": ["line", "bus"], "element_id": [1, 3],
                          "from_bus": [1, 3], "to_bus": [2, 3], "need": [0.8, 0.02],
                          "unit": ["MVA", "p.u."]})
    relief = pd.DataFrame({"need_id": [0, 0, 0, 1, 1], "bus": [1, 2, 3, 3, 2],
                           "product": ["P_down", "P_down", "Q_down", "Q_down", "Q_down"],
                           "relief": [0.9, 0.5, 0.2, 0.01, 0.004]})
    return NetworkData(buses, lines, needs, relief)


@pytest.fixture(scope="module")
def study():
    return _tables()


def test_every_figure_is_written(study, tmp_path):
    tables, per_run = study
    paths = make_plots(tables, per_run, tmp_path, window=3, network=_network(),
                       order=None, swept=("voll",))
    assert {p.name for p in paths} == ALL_FIGURES
    for path in paths:
        assert path.is_file() and path.stat().st_size > 10_000, path.name


def test_figures_for_papers_come_in_every_format_asked_for(study, tmp_path):
    tables, per_run = study
    paths = make_plots(tables, per_run, tmp_path, window=3, network=_network(),
                       swept=("voll",), formats=("svg", "PDF"))
    assert {p.name for p in paths} == {name.replace(".png", ".svg") for name in ALL_FIGURES}
    assert all(p.with_suffix(".pdf").read_bytes().startswith(b"%PDF") for p in paths)
    assert not list(tmp_path.glob("*.png"))
    with pytest.raises(InputError, match="allowed: png, pdf, svg"):
        make_plots(tables, per_run, tmp_path, window=3, formats=("jpg",))


def test_design_comparison_is_ordered_by_total_cost():
    per_run = pd.DataFrame({"design": ["A", "A", "B", "B", "C", "C"],
                            "total_cost": [900.0, 1100.0, 300.0, 500.0, np.nan, np.nan]})
    assert order_by_total_cost(per_run, ["A", "B", "C"]) == ["B", "A", "C"]
    per_run["total_cost"] = [5.0, 5.0, 5.0, 5.0, 1.0, 1.0]  # ties keep the study's order
    assert order_by_total_cost(per_run, ["B", "A", "C"]) == ["C", "B", "A"]


def test_designs_are_ranked_within_each_swept_value_never_across():
    """A cheaper assumption is not a better design: at VOLL 300 B is best, at 3000 A is,
    although every VOLL-300 run is cheaper than every VOLL-3000 run."""
    per_run = pd.DataFrame({"design": ["A", "B"] * 2, "pricing": "pay-as-bid",
                            "learner": "x", "seed": 0,
                            "variant": ["voll=3000", "voll=3000", "voll=300", "voll=300"],
                            "total_cost": [900.0, 1500.0, 400.0, 200.0]})
    per_run["market"] = setting_labels(per_run, varying_settings(per_run))
    order = ["A / voll=3000", "B / voll=3000", "A / voll=300", "B / voll=300"]
    ranked = order_by_total_cost(per_run, order)
    assert ranked == ["A / voll=3000", "B / voll=3000", "B / voll=300", "A / voll=300"]
    assert best_of_groups(per_run, ranked) == {"A / voll=3000", "B / voll=300"}


def test_bands_stay_inside_what_the_quantity_can_be():
    """Two seeds of a Lerner index at 0.9 and 1.0: the t band (± 0.64) is cut at 1."""
    import matplotlib.pyplot as plt

    from lfm_abm.results.plots import _curves

    data = pd.DataFrame({"market": "A", "round": [1, 1, 2, 2], "lerner": [0.9, 1.0] * 2})
    fig, ax = plt.subplots()
    _curves(ax, data, "lerner", "market", ["A"], {"A": "black"})
    band = ax.collections[0].get_paths()[0].vertices
    plt.close(fig)
    assert band[:, 1].max() == pytest.approx(1.0)
    assert band[:, 1].min() == pytest.approx(0.95 - 12.7062047 * np.std([0.9, 1.0], ddof=1)
                                             / np.sqrt(2))


def test_figures_without_their_data_are_skipped(study, tmp_path):
    tables, per_run = study
    without_offers = {name: frame for name, frame in tables.items() if name != "offers"}
    paths = make_plots(without_offers, per_run, tmp_path, window=3, network=None)
    names = {p.name for p in paths}
    assert names == ALL_FIGURES - {"supply_stack.png", "awards_map.png", "sweep_voll.png"}
    assert all(path.is_file() for path in paths)



def test_surplus_split_adds_up_to_the_total_cost():
    """True cost + rent + VOLL x unmet = dso_cost + VOLL x unmet = total_cost, per round."""
    from test_outputs import tiny_run

    from lfm_abm.results.kpis import run_kpis

    tables = tiny_run(4)
    kpis = run_kpis(tables, window=2, grid=ActionGrid())
    per_run = pd.DataFrame([{"run_id": "r", "market": "m", **kpis}])
    agents = tables["agents"].assign(run_id="r", true_cost=lambda a: a.payment - a.profit)
    stored = StudyTables.in_memory({"agents": agents, "rounds": tables["rounds"].assign(
        run_id="r")}, pd.DataFrame({"run_id": ["r"], "market": ["m"]}))
    add_windows(stored, window=2)
    parts = cost_components(window_costs(stored), per_run).loc["m"]
    assert parts.sum() == pytest.approx(kpis["total_cost"])
    assert parts.rent == pytest.approx(50.0)
    assert parts.curtailment_cost == 10.0 and parts.shedding_cost == 400.0


def test_a_design_has_one_colour_everywhere_and_its_settings_differ_by_line_style():
    markets = ["CMVC_PQ / pay-as-bid", "CM_P / pay-as-bid", "CMVC_PQ / locational",
               "CM_P / locational"]
    colours, styles = palette(markets), line_styles(markets)
    assert colours["CMVC_PQ / pay-as-bid"] == colours["CMVC_PQ / locational"]
    assert colours["CM_P / pay-as-bid"] != colours["CMVC_PQ / pay-as-bid"]
    assert palette(["CMVC_PQ", "CM_P"]) == {"CMVC_PQ": colours[markets[0]],
                                            "CM_P": colours[markets[1]]}
    assert [styles[m] for m in markets] == ["-", "-", "--", "--"]


def test_numbers_written_together_share_one_precision():
    assert _fmt_sum(1234.5, [12.345, 0.1234, 1222.0]) == "1,234 = 12 + 0 + 1,222"
    assert _fmt_sum(5.5, [5.0, 0.5]) == "5.50 = 5.00 + 0.50"
    assert [_short(v) for v in (500.0, 2000.0, 15000.0, 1.5e6)] == ["500", "2k", "15k", "1.5M"]


def test_a_swept_rule_is_compared_in_groups_not_drawn_as_an_axis(study, tmp_path):
    """A sweep of a text field (e.g. `market.emergency_priority`) has no numeric axis: the
    study's other figures are drawn, with no sweep figure for it (none crashes)."""
    tables, per_run = study
    rule = np.where(per_run.voll > 500, "market-first", "least-cost")
    paths = make_plots(tables, per_run.assign(emergency_priority=rule), tmp_path, window=3,
                       network=_network(), swept=("voll", "emergency_priority"))
    assert {p.name for p in paths} == ALL_FIGURES
