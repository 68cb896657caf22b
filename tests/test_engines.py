"""HiGHS and the cvxpy reference agree on random LPs; settlement identities always hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_market_golden import clear
from toy import assert_accounts_kept, bids_frame, emergency_at, make_point

from lfm_abm.market.bids import PRODUCTS
from lfm_abm.market.devices import Devices
from lfm_abm.market.emergency import MARKET_FIRST, split_by_action
from lfm_abm.market.energy import shift_account, storage_account
from lfm_abm.market.params import MarketParams


@st.composite
def instances(draw):
    """Random small markets: 2-4 buses, 1-2 lines, 1-3 periods, up to 12 bids, devices
    with a capability circle; d0 is also a battery, d1 an EV fleet (energy accounts)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(2, 4))
    n_lines = draw(st.integers(1, 2))
    n_periods = draw(st.integers(1, 3))
    points = []
    for t in range(n_periods):
        base = rng.uniform(0.002, 0.02, (n, n))
        dv_dp = (base + base.T) / 2
        points.append(make_point(
            t, vm=rng.uniform(0.93, 1.07, n), dv_dp=dv_dp, dv_dq=dv_dp * rng.uniform(0.3, 0.8),
            line_mva=rng.uniform(6.0, 12.0, n_lines), line_limit=10.0,
            dline_dp=rng.uniform(-0.9, 0.9, (n_lines, n)) + 1j * rng.uniform(-0.2, 0.2,
                                                                               (n_lines, n)),
            dline_dq=rng.uniform(-0.5, 0.5, (n_lines, n)) + 1j * rng.uniform(-0.5, 0.5,
                                                                               (n_lines, n)),
            hours=float(rng.choice([0.25, 1.0])), line_angle=rng.uniform(-0.6, 0.6, n_lines)))
    n_bids = draw(st.integers(1, 12))
    rows, devices = [], []
    for b in range(n_bids):
        device = f"d{rng.integers(2)}" if rng.random() < 0.4 else ""
        rows.append((f"b{b}", int(rng.integers(1, n + 1)), int(rng.integers(n_periods)),
                     str(rng.choice(PRODUCTS)), float(rng.uniform(0.1, 2.0)),
                     float(rng.uniform(0.0, 200.0)), device))
    bids = bids_frame(rows)
    for device in ("d0", "d1"):
        for t in range(n_periods):
            devices.append({"device_id": device, "period": t, "p_mw": rng.uniform(-1, 1),
                            "q_mvar": rng.uniform(-0.5, 0.5), "s_mva": rng.uniform(0.5, 1.5)})
    design = draw(st.sampled_from(["CM_P", "VC_Q", "CMVC_PQ", "CM_PQ", "VC_PQ", "CMVC_P"]))
    generation = {bus: float(rng.uniform(0, 2)) for bus in range(1, n + 1) if rng.random() < 0.6}
    load = {bus: float(rng.uniform(0, 2)) for bus in range(1, n + 1) if rng.random() < 0.6}
    emergency = emergency_at(generation, load, n_periods)
    energy = rng.uniform(0.2, 2.0)
    initial = energy * rng.uniform(0.0, 1.0)
    accounts = pd.concat([
        storage_account("d0", np.arange(n_periods), energy, initial,
                        initial * rng.uniform(0.5, 1.0), rng.uniform(0.8, 1.0)),
        shift_account("d1", np.arange(n_periods))], ignore_index=True)
    return points, bids, Devices(pd.DataFrame(devices), accounts), design, emergency


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_highs_and_cvxpy_agree(instance):
    points, bids, devices, design, emergency = instance
    params = MarketParams(voll=500.0)
    high, award_h, _, prices_h = clear(points, bids, design, devices=devices, engine="highs",
                                       params=params, emergency=emergency)
    ref, award_c, _, prices_c = clear(points, bids, design, devices=devices, engine="cvxpy",
                                      params=params, emergency=emergency)
    sol_h, sol_c = high.solution, ref.solution
    scale = max(1.0, abs(sol_h.objective))
    assert sol_h.objective == pytest.approx(sol_c.objective, abs=1e-6 * scale)
    np.testing.assert_allclose(award_h, award_c, atol=1e-5)
    # Duals (and so prices) are not unique at degenerate optima: each engine's duals
    # must certify its optimum (strong duality), and where they agree so do prices.
    for result in (high, ref):
        assert dual_objective(result.lp, result.solution.row_dual) == pytest.approx(
            result.solution.objective, abs=1e-6 * scale)
    dual_scale = max(1.0, np.abs(sol_h.row_dual).max(initial=0.0))
    if np.allclose(sol_h.row_dual, sol_c.row_dual, atol=1e-5 * dual_scale):
        # A price sums duals x coefficients over a period's rows: dual differences within
        # the tolerance add up to at most the tolerance x the largest column sum of |C|.
        reach = max((np.abs(np.hstack([b.coef_p, b.coef_q])).sum(axis=0).max(initial=0.0)
                     / b.hours for b in high.lp.periods), default=0.0)
        np.testing.assert_allclose(prices_h.price, prices_c.price,
                                   atol=1e-5 * dual_scale * max(1.0, reach))


def dual_objective(lp, y):
    """Lagrangian dual value of min c.x, l <= Ax <= u, 0 <= x <= U at row duals y.

    Convention of the engines: y > 0 prices the upper bound, y < 0 the lower bound.
    The dual is feasible only if no multiplier sits on an infinite bound.
    """
    up, low = np.clip(y, 0, None), np.clip(-y, 0, None)
    assert not (up[np.isinf(lp.row_upper)] > 1e-6).any()
    assert not (low[np.isinf(lp.row_lower)] > 1e-6).any()
    reduced = lp.cost + lp.matrix.T @ y
    assert not (reduced[np.isinf(lp.col_upper)] < -1e-6).any()
    bound = np.where(np.isinf(lp.col_upper), 0.0, lp.col_upper)
    rows = -(up @ np.where(np.isinf(lp.row_upper), 0.0, lp.row_upper)) + low @ np.where(
        np.isinf(lp.row_lower), 0.0, lp.row_lower)
    return float(rows + np.minimum(reduced, 0.0) @ bound)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.sampled_from(["pay-as-bid", "locational"]))
def test_settlement_identities_hold(instance, pricing):
    """Fuzz: the engine never raises; payments add up; nobody is paid below their bid."""
    points, bids, devices, design, emergency = instance
    result, awarded, payment, _ = clear(points, bids, design, pricing, devices=devices,
                                        emergency=emergency)
    lp, sol = result.lp, result.solution
    hours = np.array([points[t].hours for t in bids.period])
    at_bid = bids.price.to_numpy() * hours * awarded.to_numpy()
    assert (awarded.to_numpy() >= -1e-12).all()
    assert (awarded.to_numpy() <= bids.quantity.to_numpy() + 1e-9).all()
    bid_cost = float(lp.cost[: lp.n_bids] @ sol.x[: lp.n_bids])
    emergency_cost = float(lp.cost[lp.emergency_columns] @ sol.x[lp.emergency_columns])
    slack_cost = float(lp.cost[lp.slack_columns] @ sol.x[lp.slack_columns])
    assert bid_cost + emergency_cost + slack_cost == pytest.approx(sol.objective, rel=1e-7,
                                                                   abs=1e-7)
    taken = split_by_action([result.emergency])
    assert emergency_cost == pytest.approx(
        (1 + MARKET_FIRST) * MarketParams().emergency_cost(taken))
    assert_accounts_kept(bids.assign(awarded=awarded.to_numpy(), hours=hours),
                         devices.energy)
    if pricing == "pay-as-bid":
        np.testing.assert_allclose(payment, at_bid, atol=1e-9)
    else:
        # Each bid of no device is paid at least its offer; a device's bids are coupled
        # (a battery's recharge may earn nothing) and are paid at least their offers
        # together (the make-whole uplift covers what the price cap takes).
        tolerance = 1e-6 * max(1.0, np.abs(sol.row_dual).max(initial=0.0))
        surplus = pd.Series(payment.to_numpy() - at_bid, index=bids.bid_id.to_numpy())
        device = bids.device_id.where(bids.device_id != "", bids.bid_id).to_numpy()
        assert (surplus.groupby(device).sum() >= -tolerance).all()
        assert payment.sum() == pytest.approx(float(result.settled.payment.sum()))


def test_warm_re_solves_with_rows_left_out_are_optimal_for_the_full_lp(cigre_case):
    """HiGHS holds only the rows near their bounds; a row a new solution reaches goes
    back in. Each warm answer must be feasible and optimal for the whole LP (the cvxpy
    reference solves it whole), with duals that certify it."""
    from conftest import ample_bids

    from lfm_abm.market.clearing import Market

    bids = ample_bids(cigre_case)
    market = Market(cigre_case, "CMVC_PQ")
    market.clear(bids, ac_validate=False)
    engine = market._first._engine
    rng = np.random.default_rng(1)
    grew = 0
    for _ in range(12):
        repriced = bids.assign(price=bids.price * rng.uniform(0.2, 4.0, len(bids)),
                               quantity=bids.quantity * rng.uniform(0.5, 1.0, len(bids)))
        held = len(engine._active)
        stage = market.clear(repriced, ac_validate=False).stages[0][1]
        lp, solution = stage.lp, stage.solution
        assert not stage.rebuilt and len(engine._active) < lp.matrix.shape[0]
        grew += len(engine._active) > held
        reference = Market(cigre_case, "CMVC_PQ", engine="cvxpy").clear(
            repriced, ac_validate=False).stages[0][1].solution
        scale = max(1.0, abs(reference.objective))
        assert solution.objective == pytest.approx(reference.objective, abs=1e-7 * scale)
        activity = lp.matrix @ solution.x
        assert (activity <= lp.row_upper + 1e-6).all() and (activity >= lp.row_lower - 1e-6).all()
        assert dual_objective(lp, solution.row_dual) == pytest.approx(solution.objective,
                                                                      abs=1e-6 * scale)
    assert grew > 0  # rows did go back in
