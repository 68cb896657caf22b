"""Clearing cases worked out on paper: awards, cost, duals and prices are known exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from toy import bids_frame, toy_point

from lfm_abm.market.bids import validate_bids
from lfm_abm.market.designs import parse_design
from lfm_abm.market.engines import CvxpyEngine, HighsEngine
from lfm_abm.market.formulation import build_lp
from lfm_abm.market.params import MarketParams
from lfm_abm.market.pricing import locational_prices, settle
from lfm_abm.network.needs import NeedLimits

ENGINES = [HighsEngine, CvxpyEngine]


def clear(points, bids, design, pricing="pay-as-bid", devices=None, engine=HighsEngine,
          params=None):
    bids = validate_bids(bids)
    stage = parse_design(design).stages[0]
    lp = build_lp(points, bids, stage, NeedLimits(), params or MarketParams(), devices)
    solver = engine()
    solver.load(lp)
    solution = solver.solve()
    chosen = bids.iloc[lp.bid_index]
    hours = np.array([points[t].hours for t in chosen.period])
    settled = settle(lp, solution, chosen, hours, pricing)
    awarded = pd.Series(0.0, index=bids.bid_id)
    awarded[chosen.bid_id.to_numpy()] = settled.awarded.to_numpy()
    payment = pd.Series(0.0, index=bids.bid_id)
    payment[chosen.bid_id.to_numpy()] = settled.payment.to_numpy()
    return lp, solution, awarded, payment, locational_prices(lp, solution)


def price_at(prices, bus, product, period=0):
    row = prices[(prices.bus == bus) & (prices["product"] == product) & (prices.period == period)]
    return float(row.price.iloc[0])


@pytest.mark.parametrize("engine", ENGINES)
def test_cm_p_two_bids_on_one_overloaded_line(engine):
    """Line at 11 MVA, limit 10; curtailing 1 MW at bus 1 relieves 0.5 MVA.

    Need 1 MVA = 2 MW of P_down: the 50 EUR bid fully (0.8 MW), the 80 EUR bid for
    1.2 MW. Cost 40 + 96 = 136 EUR. The CM dual is 80 / 0.5 = 160 EUR/MVA, so the
    marginal price of P_down at bus 1 is 80 EUR/MWh and payments are 64 + 96 = 160.
    """
    points = [toy_point(line_mva=11.0, dline_dp=(0.5, 0.0))]
    bids = bids_frame([("A", 1, 0, "P_down", 0.8, 50.0), ("B", 1, 0, "P_down", 2.0, 80.0),
                       ("C", 2, 0, "P_down", 5.0, 1.0)])  # C has no effect on the line
    lp, sol, awarded, payment, prices = clear(points, bids, "CM_P", engine=engine)
    assert awarded.to_dict() == pytest.approx({"A": 0.8, "B": 1.2, "C": 0.0}, abs=1e-7)
    assert sol.objective == pytest.approx(136.0)
    assert payment.sum() == pytest.approx(136.0)
    cm_rows = np.flatnonzero((lp.rows.service == "CM") & (lp.rows.cut == 0))
    assert sol.row_dual[cm_rows] == pytest.approx([160.0], rel=1e-6)
    assert price_at(prices, 1, "P_down") == pytest.approx(80.0)
    assert price_at(prices, 1, "P_up") == pytest.approx(-80.0)
    assert price_at(prices, 2, "P_down") == pytest.approx(0.0, abs=1e-9)
    _, _, _, marginal, _ = clear(points, bids, "CM_P", "marginal", engine=engine)
    assert marginal.to_dict() == pytest.approx({"A": 64.0, "B": 96.0, "C": 0.0}, abs=1e-6)


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
    _, sol, awarded, _, prices = clear(points, bids, "VC_Q", engine=engine)
    assert awarded.to_dict() == pytest.approx({"C": 1.0, "D": 3.0, "E": 0.0}, abs=1e-7)
    assert sol.objective == pytest.approx(55.0)
    assert price_at(prices, 1, "Q_down") == pytest.approx(30.0)
    assert price_at(prices, 2, "Q_down") == pytest.approx(15.0)
    _, _, _, marginal, _ = clear(points, bids, "VC_Q", "marginal", engine=engine)
    assert marginal.to_dict() == pytest.approx({"C": 30.0, "D": 45.0, "E": 0.0}, abs=1e-6)


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
    devices = pd.DataFrame({"device_id": ["pv"], "period": [0], "p_mw": [1.0],
                            "q_mvar": [0.0], "s_mva": [1.0]})
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
    lp, sol, awarded, _, prices = clear(points, bids, "CMVC_PQ", devices=devices,
                                              engine=engine, params=params)
    assert awarded.to_dict() == pytest.approx({"p": 0.5, "q": 0.2, "r": 0.0}, abs=1e-7)
    assert sol.objective == pytest.approx(21.0)
    assert price_at(prices, 1, "P_down") == pytest.approx(40.0)
    assert price_at(prices, 1, "Q_down") == pytest.approx(5.0)
    assert (lp.rows.service == "CAP").sum() >= 1


@pytest.mark.parametrize("engine", ENGINES)
def test_infeasible_market_reports_unmet_need_at_voll(engine):
    """VC_Q on the PV case: the PV has no Q headroom without curtailing P, and P is not
    admitted, so nothing helps. The need (0.006 p.u.) stays unmet at VOLL x w, with
    w = 1 / (dV1/dP1) = 100 MW per p.u.: 1000 x 100 x 0.006 = 600 EUR."""
    points, bids, devices, params = pv_case()
    lp, sol, awarded, payment, _ = clear(points, bids, "VC_Q", devices=devices,
                                         engine=engine, params=params)
    assert awarded.sum() == pytest.approx(0.0, abs=1e-9)
    assert payment.sum() == pytest.approx(0.0, abs=1e-9)
    assert sol.objective == pytest.approx(600.0)
    slack = sol.x[lp.n_bids:]
    assert slack.sum() == pytest.approx(0.006)
    vc_row = np.flatnonzero((lp.rows.service == "VC") & (lp.rows.element_id == "1"))[0]
    assert lp.rows.mw_per_unit[vc_row] == pytest.approx(100.0)
    assert sol.row_dual[vc_row] == pytest.approx(1000.0 * 100.0)  # dual = VOLL x w: unmet


def test_period_length_scales_cost_not_awards():
    points = [toy_point(line_mva=11.0, dline_dp=(0.5, 0.0), hours=0.25)]
    bids = bids_frame([("A", 1, 0, "P_down", 0.8, 50.0), ("B", 1, 0, "P_down", 2.0, 80.0)])
    _, sol, awarded, _, prices = clear(points, bids, "CM_P")
    assert awarded.to_dict() == pytest.approx({"A": 0.8, "B": 1.2})
    assert sol.objective == pytest.approx(136.0 / 4)
    assert price_at(prices, 1, "P_down") == pytest.approx(80.0)  # still EUR/MWh
