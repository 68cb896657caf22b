"""Clearing cases worked out on paper: awards, cost, duals, prices and unmet need are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from toy import bids_frame, emergency_at, make_point, toy_point

from lfm_abm.market.bids import empty_bids, validate_bids
from lfm_abm.market.designs import parse_design
from lfm_abm.market.devices import Devices
from lfm_abm.market.emergency import MARKET_FIRST
from lfm_abm.market.params import MarketParams
from lfm_abm.market.pricing import locational_prices
from lfm_abm.market.stages import StageSolver, clear_emergency_only, clear_stage
from lfm_abm.network.needs import NeedLimits

ENGINES = ["highs", "cvxpy"]
#: Emergency action's objective cost per MWh over its price: a bid at that price wins the tie.
TIE = 1.0 + MARKET_FIRST
#: The default prices of emergency action, EUR/MWh: curtailment and load shedding (VOLL).
CURTAIL = MarketParams().curtailment_price
VOLL = MarketParams().voll


def clear(points, bids, design, pricing="pay-as-bid", devices=None, engine="highs",
          params=None, emergency=None):
    """Clear the design's first stage; awards and payments indexed by bid id."""
    bids = validate_bids(bids)
    stage = parse_design(design).stages[0]
    result = clear_stage(points, bids, stage, NeedLimits(), params or MarketParams(),
                         devices=devices, emergency=emergency, pricing=pricing,
                         solver=StageSolver(engine))
    ids = bids.bid_id.to_numpy()[result.lp.bid_index]
    awarded = pd.Series(0.0, index=bids.bid_id)
    awarded[ids] = result.settled.awarded.to_numpy()
    payment = pd.Series(0.0, index=bids.bid_id)
    payment[ids] = result.settled.payment.to_numpy()
    return result, awarded, payment, locational_prices(result.lp, result.solution)


def price_at(prices, bus, product, period=0):
    row = prices[(prices.bus == bus) & (prices["product"] == product) & (prices.period == period)]
    return float(row.price.iloc[0])


def row_of(lp, service, element_id, cut=0.0):
    rows = lp.rows
    match = (rows.service == service) & (rows.element_id == str(element_id))
    if service == "CM":
        match &= rows.cut == cut
    return int(np.flatnonzero(match)[0])


@pytest.mark.parametrize("engine", ENGINES)
def test_cm_p_two_bids_on_one_overloaded_line(engine):
    """Line at 11 MVA, limit 10; curtailing 1 MW at bus 1 relieves 0.5 MVA.

    Need 1 MVA = 2 MW of P_down: the 50 EUR bid fully (0.8 MW), the 80 EUR bid for
    1.2 MW. Cost 40 + 96 = 136 EUR. The CM dual is 80 / 0.5 = 160 EUR/MVA, so the
    locational price of P_down at bus 1 is 80 EUR/MWh and payments are 64 + 96 = 160.
    Emergency curtailment at bus 1 costs 100 EUR/MWh and is not used.
    """
    points = [toy_point(line_mva=11.0, dline_dp=(0.5, 0.0))]
    bids = bids_frame([("A", 1, 0, "P_down", 0.8, 50.0), ("B", 1, 0, "P_down", 2.0, 80.0),
                       ("C", 2, 0, "P_down", 5.0, 1.0)])  # C has no effect on the line
    emergency = emergency_at({1: 5.0, 2: 5.0})
    result, awarded, payment, prices = clear(points, bids, "CM_P", engine=engine,
                                             emergency=emergency)
    assert awarded.to_dict() == pytest.approx({"A": 0.8, "B": 1.2, "C": 0.0}, abs=1e-7)
    assert result.solution.objective == pytest.approx(136.0)
    assert payment.sum() == pytest.approx(136.0)
    assert result.emergency_mwh == pytest.approx(0.0, abs=1e-9)
    assert result.solution.row_dual[row_of(result.lp, "CM", 0)] == pytest.approx(160.0,
                                                                                rel=1e-6)
    assert price_at(prices, 1, "P_down") == pytest.approx(80.0)
    assert price_at(prices, 1, "P_up") == pytest.approx(-80.0)
    assert price_at(prices, 2, "P_down") == pytest.approx(0.0, abs=1e-9)
    _, _, locational, _ = clear(points, bids, "CM_P", "locational", engine=engine,
                              emergency=emergency)
    assert locational.to_dict() == pytest.approx({"A": 64.0, "B": 96.0, "C": 0.0}, abs=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_vc_q_absorbing_reactive_power_at_two_buses(engine):
    """Bus 1 at 1.06 p.u. (limit 1.05): need 0.01 p.u.

    Q_down at bus 1 lowers V1 by 0.004 p.u./MVAr (10 EUR, 2500 EUR per p.u.), at bus 2 by
    0.002 (15 EUR, 7500 EUR per p.u.). Optimum: 1 MVAr at bus 1, 3 MVAr at bus 2, cost
    55 EUR; VC dual 7500 EUR/p.u., so Q_down is worth 30 EUR/MVArh at bus 1.
    """
    points = [toy_point(vm=(1.06, 1.03), dv_dq=((0.004, 0.002), (0.002, 0.004)))]
    bids = bids_frame([("C", 1, 0, "Q_down", 1.0, 10.0), ("D", 2, 0, "Q_down", 5.0, 15.0),
                       ("E", 1, 0, "P_down", 5.0, 1.0)])  # P not admitted in VC_Q
    result, awarded, _, prices = clear(points, bids, "VC_Q", engine=engine)
    assert awarded.to_dict() == pytest.approx({"C": 1.0, "D": 3.0, "E": 0.0}, abs=1e-7)
    assert result.solution.objective == pytest.approx(55.0)
    assert price_at(prices, 1, "Q_down") == pytest.approx(30.0)
    assert price_at(prices, 2, "Q_down") == pytest.approx(15.0)
    _, _, locational, _ = clear(points, bids, "VC_Q", "locational", engine=engine)
    assert locational.to_dict() == pytest.approx({"C": 30.0, "D": 45.0, "E": 0.0}, abs=1e-6)


def pv_case():
    """Bus 1: PV at full output (P0 = S = 1 MVA), line at 10.25 MVA and V1 = 1.056.

    Curtailing 1 MW relieves the line by 0.5 MVA and V1 by 0.01 p.u.; absorbing 1 MVAr
    lowers V1 by 0.005. With a square capability polygon the PV can absorb Q only as far
    as it curtails P (|Q| <= dP).
    """
    points = [toy_point(line_mva=10.25, dline_dp=(0.5, 0.0), vm=(1.056, 1.0),
                        dv_dp=((0.01, 0.0), (0.0, 0.01)), dv_dq=((0.005, 0.0), (0.0, 0.005)))]
    bids = bids_frame([("p", 1, 0, "P_down", 1.0, 40.0, "pv"),
                       ("q", 1, 0, "Q_down", 1.0, 5.0, "pv"),
                       ("r", 1, 0, "P_down", 0.5, 100.0)])
    devices = Devices(pd.DataFrame({"device_id": ["pv"], "period": [0], "p_mw": [1.0],
                                    "q_mvar": [0.0], "s_mva": [1.0]}))
    return points, bids, devices, MarketParams(capability_cuts=4)


@pytest.mark.parametrize("engine", ENGINES)
def test_cmvc_pq_with_capability_coupling(engine):
    """Needs: CM 0.25 MVA -> 0.5 MW of P_down; VC 0.006 p.u.

    p + r >= 0.5 (CM), 0.01 (p + r) + 0.005 q >= 0.006 (VC), q <= p (capability).
    r is dearest, so p = 0.5 and q = 0.2: cost 20 + 1 = 21 EUR. Duals: VC 1000 EUR/p.u.
    (from q: 5 = 0.005 y), CM 60 EUR/MVA (from p: 40 = 0.5 y_cm + 0.01 x 1000). Bid r is
    worth 0.5 x 60 + 0.01 x 1000 = 40 < 100 and is rejected.
    """
    points, bids, devices, params = pv_case()
    result, awarded, _, prices = clear(points, bids, "CMVC_PQ", devices=devices,
                                       engine=engine, params=params,
                                       emergency=emergency_at({1: 1.0}))
    assert awarded.to_dict() == pytest.approx({"p": 0.5, "q": 0.2, "r": 0.0}, abs=1e-7)
    assert result.solution.objective == pytest.approx(21.0)
    assert price_at(prices, 1, "P_down") == pytest.approx(40.0)
    assert price_at(prices, 1, "Q_down") == pytest.approx(5.0)
    assert (result.lp.rows.service == "CAP").sum() >= 1


@pytest.mark.parametrize("engine", ENGINES)
def test_what_the_market_cannot_buy_is_bought_as_emergency_action(engine):
    """VC_Q on the PV case: the PV has no Q headroom without curtailing P, and P is not
    admitted, so no bid helps. The DSO curtails the PV itself: 0.006 p.u. / 0.01 p.u./MW
    = 0.6 MW at the curtailment price (100 EUR/MWh), 60 EUR, and the unmet need is
    0.6 MWh. The VC dual is what one p.u. of emergency relief costs: 100 / 0.01 =
    10 000 EUR/p.u. The overloaded line
    (not bought in VC_Q) may not get worse; curtailment relieves it, so that row is slack.
    """
    points, bids, devices, params = pv_case()
    result, awarded, payment, _ = clear(points, bids, "VC_Q", devices=devices,
                                        engine=engine, params=params,
                                        emergency=emergency_at({1: 1.0}))
    assert awarded.sum() == pytest.approx(0.0, abs=1e-9)
    assert payment.sum() == pytest.approx(0.0, abs=1e-9)
    assert result.solution.objective == pytest.approx(0.6 * CURTAIL * TIE)
    assert result.emergency_mwh == pytest.approx(0.6)
    assert result.emergency.action.tolist() == ["curtail"]
    assert result.unresolved.empty
    assert result.solution.row_dual[row_of(result.lp, "VC", 1)] == pytest.approx(
        CURTAIL * TIE / 0.01)


def test_need_beyond_emergency_capacity_is_unresolvable():
    """The same case without anything connected to curtail: the need (0.006 p.u.) is
    reported as unresolvable, in p.u., and no emergency MWh is invented for it."""
    points, bids, devices, params = pv_case()
    result, _, _, _ = clear(points, bids, "VC_Q", devices=devices, params=params,
                            emergency=emergency_at({}))
    assert result.emergency_mwh == 0.0
    assert result.unresolved.need.tolist() == pytest.approx([0.006])
    assert result.unresolved.unit.tolist() == ["p.u."]


def feeder(vm, sensitivity, generation):
    """A radial feeder slack-1-2-...: dV_i/dP_j = step x (segments shared by i and j)."""
    n = len(vm)
    shared = np.minimum.outer(np.arange(1, n + 1), np.arange(1, n + 1))
    point = make_point(0, vm=vm, dv_dp=sensitivity * shared, dv_dq=0.5 * sensitivity * shared,
                       line_mva=[1.0], line_limit=10.0, dline_dp=[np.zeros(n)],
                       dline_dq=[np.zeros(n)])
    return [point], emergency_at(generation)


def test_least_curtailment_on_one_feeder():
    """Feeder slack-1-2-3, 0.002 p.u./MW per segment: V3 = 1.062 needs 0.012 p.u.

    Curtailing 1 MW lowers V3 by 0.006 at bus 3, 0.004 at bus 2, 0.002 at bus 1. With
    1, 1 and 2 MW of generation there, the least curtailment takes bus 3 and bus 2 in
    full and 1 MW at bus 1: 3 MW (0.006 + 0.004 + 0.002 = 0.012), 300 EUR at 100 EUR/MWh.
    Then V2 = 1.055 - 0.010 = 1.045 and V1 = 1.024, inside the band.
    """
    points, emergency = feeder([1.03, 1.055, 1.062], 0.002, {1: 2.0, 2: 1.0, 3: 1.0})
    result = clear_emergency_only(points, NeedLimits(), MarketParams(), emergency)
    used = result.emergency.set_index("bus").mw
    assert used.to_dict() == pytest.approx({1: 1.0, 2: 1.0, 3: 1.0}, abs=1e-7)
    assert result.emergency_mwh == pytest.approx(3.0)
    assert result.solution.objective == pytest.approx(3.0 * CURTAIL * TIE)
    assert result.solution.row_dual[row_of(result.lp, "VC", 3)] == pytest.approx(
        CURTAIL * TIE / 0.002)


def test_one_mw_fixing_two_buses_counts_once():
    """Feeder slack-1-2, 0.005 p.u./MW per segment: V1 = 1.055, V2 = 1.06.

    Curtailing 1 MW at bus 2 lowers V1 by 0.005 and V2 by 0.010: both back at 1.05 with
    1 MW. Unmet need is 1 MWh, not 0.005/0.005 + 0.010/0.010 = 2 "MW-equivalents".
    """
    points, emergency = feeder([1.055, 1.06], 0.005, {2: 3.0})
    result = clear_emergency_only(points, NeedLimits(), MarketParams(), emergency)
    assert result.emergency_mwh == pytest.approx(1.0)
    assert result.solution.objective == pytest.approx(CURTAIL * TIE)


def q_line_case(line_mva):
    """Bus 1 at 1.06 p.u. (need 0.01); absorbing Q lowers V1 (0.005 at bus 1, 0.0025 at
    bus 2, per MVAr) but absorbing at bus 1 loads the line by 0.5 MVA per MVAr."""
    points = [toy_point(vm=(1.06, 1.0), dv_dq=((0.005, 0.0025), (0.0025, 0.005)),
                        line_mva=line_mva, dline_dq=(-0.5, 0.0))]
    bids = bids_frame([("near", 1, 0, "Q_down", 5.0, 5.0), ("far", 2, 0, "Q_down", 5.0, 20.0)])
    return points, bids


@pytest.mark.parametrize("engine", ENGINES)
def test_a_stage_may_not_overload_a_line_it_does_not_buy(engine):
    """VC_Q with the line at 9.9 MVA (limit 10): 0.2 MVAr at bus 1 use its 0.1 MVA of
    headroom (V1 -0.001), the other 0.009 p.u. come from bus 2: 3.6 MVAr. Cost
    1 + 72 = 73 EUR. Without no-harm rows the cheap bus-1 Q alone (2 MVAr, 10 EUR) would
    load the line to 10.9 MVA."""
    points, bids = q_line_case(9.9)
    _, awarded, _, _ = clear(points, bids, "VC_Q", engine=engine)
    assert awarded.to_dict() == pytest.approx({"near": 0.2, "far": 3.6}, abs=1e-7)
    old = MarketParams(no_harm=False)
    _, awarded, _, _ = clear(points, bids, "VC_Q", engine=engine, params=old)
    assert awarded.to_dict() == pytest.approx({"near": 2.0, "far": 0.0}, abs=1e-7)


def test_an_element_already_outside_its_limit_may_not_move_further_out():
    """The same with the line already overloaded (11 MVA): VC_Q does not buy CM, so the
    line may stay at 11 MVA but not go above it: bus-1 Q is not used at all, and all
    0.01 p.u. come from bus 2 (4 MVAr, 80 EUR)."""
    points, bids = q_line_case(11.0)
    result, awarded, _, _ = clear(points, bids, "VC_Q")
    assert awarded.to_dict() == pytest.approx({"near": 0.0, "far": 4.0}, abs=1e-7)
    line_rows = result.lp.rows[result.lp.rows.service == "CM"]
    assert not line_rows.bought.any() and not line_rows.fix.any()


def test_bids_above_the_reservation_price_are_not_admitted():
    """CM_P of the first case with a reservation price of 70 EUR/MWh: bid B (80) is not
    admitted. A covers 0.4 MVA, the other 0.6 MVA takes 1.2 MW of emergency curtailment
    at bus 1 (120 EUR at 100 EUR/MWh)."""
    points = [toy_point(line_mva=11.0, dline_dp=(0.5, 0.0))]
    bids = bids_frame([("A", 1, 0, "P_down", 0.8, 50.0), ("B", 1, 0, "P_down", 2.0, 80.0)])
    params = MarketParams(reservation_price=70.0)
    result, awarded, _, _ = clear(points, bids, "CM_P", params=params,
                                  emergency=emergency_at({1: 5.0}))
    assert awarded.to_dict() == pytest.approx({"A": 0.8, "B": 0.0}, abs=1e-7)
    assert result.emergency_mwh == pytest.approx(1.2)
    assert result.solution.objective == pytest.approx(40.0 + 1.2 * CURTAIL * TIE)


def test_period_length_scales_cost_not_awards():
    points = [toy_point(line_mva=11.0, dline_dp=(0.5, 0.0), hours=0.25)]
    bids = bids_frame([("A", 1, 0, "P_down", 0.8, 50.0), ("B", 1, 0, "P_down", 2.0, 80.0)])
    result, awarded, _, prices = clear(points, bids, "CM_P")
    assert awarded.to_dict() == pytest.approx({"A": 0.8, "B": 1.2})
    assert result.solution.objective == pytest.approx(136.0 / 4)
    assert price_at(prices, 1, "P_down") == pytest.approx(80.0)  # still EUR/MWh


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bid_at_exactly_the_curtailment_price_wins_against_emergency_action(engine):
    """A 2 MW need at bus 1 and one bid there priced at the curtailment price, 100: the
    DSO is indifferent in cost, and buys the bid (market-based procurement before
    involuntary curtailment), paying 2 MWh x 100 = 200 EUR with no unmet need."""
    points = [toy_point(line_mva=11.0, dline_dp=(0.5, 0.0))]
    bids = bids_frame([("A", 1, 0, "P_down", 3.0, CURTAIL)])
    result, awarded, payment, _ = clear(points, bids, "CM_P", engine=engine,
                                        emergency=emergency_at({1: 5.0}))
    assert awarded["A"] == pytest.approx(2.0)
    assert payment["A"] == pytest.approx(2.0 * CURTAIL)
    assert result.emergency_mwh == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_emergency_priority_decides_between_a_dear_offer_and_curtailment(engine):
    """The same 2 MW need, the bid at 400 EUR/MWh, curtailment at 100. Least-cost: the DSO
    curtails 2 MW itself (200 EUR of compensation) and buys nothing. Market-first: it buys
    the admitted offer in full (800 EUR) and curtails nothing, as Regulation 2019/943
    Art. 13(3) requires: its objective scales emergency prices up until curtailment costs
    the reservation price (VOLL)."""
    points = [toy_point(line_mva=11.0, dline_dp=(0.5, 0.0))]
    bids = bids_frame([("A", 1, 0, "P_down", 3.0, 400.0)])
    result, awarded, _, _ = clear(points, bids, "CM_P", engine=engine,
                                  emergency=emergency_at({1: 5.0}))
    assert awarded["A"] == pytest.approx(0.0, abs=1e-9)
    assert result.emergency.action.tolist() == ["curtail"]
    assert result.emergency_mwh == pytest.approx(2.0)
    assert result.solution.objective == pytest.approx(2.0 * CURTAIL * TIE)
    first = MarketParams(emergency_priority="market-first")
    result, awarded, payment, _ = clear(points, bids, "CM_P", engine=engine, params=first,
                                        emergency=emergency_at({1: 5.0}))
    assert awarded["A"] == pytest.approx(2.0)
    assert payment["A"] == pytest.approx(800.0)
    assert result.emergency_mwh == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_load_shedding_is_priced_at_voll_and_curtailment_at_its_compensation(engine):
    """Bus 1 at 0.94 p.u. (0.01 below the band) and bus 2 at 1.06 (0.01 above), 0.01 p.u.
    per MW at each bus, no coupling: raising bus 1 takes 1 MW of load shed (VOLL, 1000
    EUR), lowering bus 2 1 MW of generation curtailed (100 EUR). The duals price one p.u.
    at each: VOLL / 0.01 and 100 / 0.01."""
    points = [toy_point(vm=(0.94, 1.06), dv_dp=((0.01, 0.0), (0.0, 0.01)))]
    result, _, _, _ = clear(points, empty_bids(), "VC_P", engine=engine,
                            emergency=emergency_at({2: 5.0}, {1: 5.0}))
    used = result.emergency.set_index("action")
    assert used.bus.to_dict() == {"shed": 1, "curtail": 2}
    assert used.mw.to_dict() == pytest.approx({"shed": 1.0, "curtail": 1.0})
    assert result.solution.objective == pytest.approx((VOLL + CURTAIL) * TIE)
    assert result.solution.row_dual[row_of(result.lp, "VC", 1)] == pytest.approx(
        -VOLL * TIE / 0.01)
    assert result.solution.row_dual[row_of(result.lp, "VC", 2)] == pytest.approx(
        CURTAIL * TIE / 0.01)


@pytest.mark.parametrize("priority", ["least-cost", "market-first"])
def test_without_offers_both_priorities_take_the_least_cost_emergency_action(priority):
    """One line 1 MVA over its limit: curtailing at bus 1 relieves 0.1 MVA per MW (10 MW,
    1000 EUR at 100), shedding at bus 2 0.5 (2 MW, 2000 EUR at VOLL). The DSO alone
    curtails under either priority: market-first puts offers first, it does not change
    which emergency action is cheapest."""
    points = [toy_point(line_mva=11.0, dline_dp=(0.1, -0.5))]
    params = MarketParams(emergency_priority=priority)
    result = clear_emergency_only(points, NeedLimits(), params, emergency_at({1: 20.0},
                                                                             {2: 5.0}))
    assert result.emergency.action.tolist() == ["curtail"]
    assert result.emergency_mwh == pytest.approx(10.0)
