"""Market-power instruments on cases whose answer is known: pivotal suppliers by
re-clearing, per-need HHI, regret of a profile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import ample_bids
from toy import toy_point

from lfm_abm.agents.population import load_population
from lfm_abm.day import published_periods
from lfm_abm.equilibrium import DayGame, regret_table
from lfm_abm.learning import ActionGrid
from lfm_abm.market.bids import validate_bids
from lfm_abm.market.clearing import Market
from lfm_abm.market.concentration import NeedMarkets
from lfm_abm.market.devices import Devices
from lfm_abm.market.params import MarketParams
from lfm_abm.market.structure import pivotal_suppliers
from lfm_abm.model import LFMModel, ModelSettings
from lfm_abm.results.kpis import run_kpis


def cm_bids(case):
    """Ample truthful bids of the CM periods only: every bus bids P and Q."""
    periods = published_periods(case, Market(case, "CMVC_PQ").design)
    return validate_bids(ample_bids(case, quantity=2.0, periods=periods)), periods


def test_with_a_twin_for_every_supplier_nobody_is_pivotal(cigre_case):
    """Every offer duplicated under a second provider: withdrawing one leaves its twin,
    so neither the unmet need nor the cost moves."""
    bids, periods = cm_bids(cigre_case)
    twins = bids.assign(bid_id=bids.bid_id + "-twin", provider_id=bids.provider_id + "-twin")
    table, suppliers = pivotal_suppliers(Market(cigre_case, "CMVC_PQ"),
                                         pd.concat([bids, twins], ignore_index=True),
                                         Devices(), periods)
    assert len(table) == len(periods) and not table.scarce.any()
    assert not suppliers.pivotal.any()
    np.testing.assert_allclose(suppliers.cost_increase, 0.0, atol=1e-6)


def test_a_monopoly_at_the_only_useful_bus_is_pivotal(cigre_case):
    """Only one provider keeps its offers; all others offer nothing. Without it, the
    need is met by emergency action: it is pivotal in every period with a need, its
    absence adds exactly the emergency action of the day without a market, and the
    others, offering nothing, are never pivotal."""
    bids, periods = cm_bids(cigre_case)
    market = Market(cigre_case, "CMVC_PQ")
    full = market.clear(bids, ac_validate=False, trusted=True)
    winners = full.awards.groupby("provider_id").awarded.sum()
    monopolist = winners.idxmax()
    alone = bids.assign(quantity=np.where(bids.provider_id == monopolist, 10.0, 0.0))
    table, suppliers = pivotal_suppliers(market, alone, Devices(), periods)
    mine = suppliers[suppliers.provider_id == monopolist]
    assert suppliers.pivotal[suppliers.provider_id != monopolist].sum() == 0
    with_needs = table.cost > 0
    assert mine.pivotal[with_needs.to_numpy()].all()
    without = market.clear(alone.assign(quantity=0.0), ac_validate=False, trusted=True)
    emergency = sum(stage.emergency_mwh for stage in without.design_stages)
    assert mine.unmet_increase_mwh.sum() + table.unmet_mwh.sum() == pytest.approx(
        emergency, abs=1e-6)


def test_a_supplier_the_dso_replaces_by_cheap_curtailment_is_not_pivotal(cigre_case):
    """The monopolist of the test above, with curtailment compensated at 1 EUR/MWh, below
    every offer. In the midday periods (reverse flow) the DSO curtails instead of buying
    (least-cost): the monopolist's absence costs nothing, so it is not pivotal there, and
    those periods are not scarce (its offers would do). In the evening periods (forward
    flow) its absence means shedding load: pivotal. At the default compensation (100),
    or under market-first at any compensation, it is pivotal in every period with a
    need."""
    bids, periods = cm_bids(cigre_case)
    full = Market(cigre_case, "CMVC_PQ").clear(bids, ac_validate=False, trusted=True)
    monopolist = full.awards.groupby("provider_id").awarded.sum().idxmax()
    alone = bids.assign(quantity=np.where(bids.provider_id == monopolist, 10.0, 0.0))
    pivotal = {}
    for price, priority in ((1.0, "least-cost"), (100.0, "least-cost"),
                            (1.0, "market-first")):
        params = MarketParams(curtailment_price=price, emergency_priority=priority)
        market = Market(cigre_case.with_params(params), "CMVC_PQ")
        table, suppliers = pivotal_suppliers(market, alone, Devices(), periods)
        mine = suppliers[suppliers.provider_id == monopolist].set_index("period")
        pivotal[price, priority] = mine.pivotal
        assert not table.scarce.any()
    # market-first: the DSO may not replace it by emergency action, however cheap
    assert pivotal[100.0, "least-cost"].all() and pivotal[1.0, "market-first"].all()
    pivotal[1.0] = pivotal[1.0, "least-cost"]
    cheap = pivotal[1.0]
    assert 0 < cheap.sum() < len(cheap)
    assert (cheap.index[cheap] > cheap.index[~cheap].max()).all()  # the evening ones


def test_scarcity_is_reported_apart_from_pivotal_suppliers(cigre_case):
    """Tiny offers cannot meet the needs: every period with a need is scarce."""
    bids, periods = cm_bids(cigre_case)
    table, _ = pivotal_suppliers(Market(cigre_case, "CMVC_PQ"), bids.assign(quantity=1e-4),
                                 Devices(), periods)
    assert table.scarce.all() and (table.unmet_mwh > 0).all()


def test_need_hhi_of_one_supplier_is_10000_and_of_equal_halves_5000():
    """One need; offers 0 and 1 (FSP a) relieve it, offer 2 (FSP b) too, offer 3 (FSP c)
    does not (wrong bus). Per-unit relief 0.5 at bus 1: shares follow awarded MW."""
    point = toy_point(line_mva=11.0, dline_dp=(0.5, 0.0))
    case = type("Case", (), {"points": [point]})()
    needs = pd.DataFrame({"period": [0], "element": ["line"], "element_id": [0],
                          "value": [11.0], "limit": [10.0], "need": [1.0]})
    offers = pd.DataFrame({"provider_id": ["a", "a", "b", "c"], "bus": [1, 1, 1, 2],
                           "period": [0] * 4, "product": ["P_down"] * 4})
    markets = NeedMarkets(case, needs, offers)
    assert markets.hhi(np.array([1.0, 1.0, 0.0, 5.0])) == pytest.approx(10_000)
    assert markets.hhi(np.array([0.5, 0.5, 1.0, 0.0])) == pytest.approx(5_000)
    assert markets.hhi(np.array([1.0, 0.0, 3.0, 0.0])) == pytest.approx(
        10_000 * (0.25 ** 2 + 0.75 ** 2))
    assert np.isnan(markets.hhi(np.array([0.0, 0.0, 0.0, 5.0])))


@pytest.fixture(scope="module")
def cigre_game():
    model = LFMModel(ModelSettings("cigre-mv", load_population("agents/cigre_mv.toml"),
                                   "CMVC_PQ", actions=ActionGrid(markups=(0.0, 1.0, 4.0))),
                     seed=0)
    return DayGame(model.day(model.days[0]), "pay-as-bid", model.settings.actions)


def test_regret_is_each_learners_best_deviation_gain(cigre_game):
    """Checked against a brute-force re-clearing of every deviation of two learners;
    truthful bidding under pay-as-bid earns nothing, so every gain is >= 0 and some
    learner gains by raising its markup."""
    profile = [0] * cigre_game.n_players
    table = regret_table(cigre_game, profile)
    np.testing.assert_allclose(table.profit, 0.0, atol=1e-6)
    assert (table.regret >= 0).all() and table.regret.max() > 0
    for player in np.argsort(-table.regret.to_numpy())[:2]:
        best = max(cigre_game.profits([a if i == player else 0 for i in
                                       range(cigre_game.n_players)])[player] for a in range(3))
        assert table.regret.iloc[player] == pytest.approx(best, abs=1e-6)


def test_regret_every_k_rounds_keeps_each_profile_and_the_kpi_reads_the_last():
    model = LFMModel(ModelSettings("cigre-mv", load_population("agents/cigre_mv.toml"),
                                   "CMVC_PQ", actions=ActionGrid(markups=(0.0, 1.0, 4.0))),
                     seed=1)
    for _ in range(2):
        model.step()
        model.step()
        model.equilibrium()
    tables = model.records()
    regret = tables["regret"]
    assert sorted(regret["round"].unique()) == [2, 4]
    last = regret[regret["round"] == 4]
    assert len(last) == len(model.groups)
    kpis = run_kpis(tables, window=2, grid=ActionGrid())
    assert kpis["regret_max"] == pytest.approx(last.regret.max())
    assert kpis["regret_mean"] == pytest.approx(last.regret.mean())
