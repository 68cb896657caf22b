"""The market on real grids: designs, engines, warm re-solves, settlement, AC validation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import ample_bids
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lfm_abm.errors import InputError
from lfm_abm.market.clearing import Market, MarketCase, combine_flex
from lfm_abm.market.designs import SINGLE_DESIGNS, parse_design
from lfm_abm.market.emergency import emergency_injections
from lfm_abm.market.params import MarketParams

SEQUENTIAL = ["CM_P>VC_Q", "VC_Q>CM_P", "CM_PQ>VC_PQ", "VC_PQ>CM_PQ", "CM_P>VC_P"]


@pytest.fixture(scope="module")
def relinearised(cigre_case):
    case = MarketCase.build("cigre-mv", params=MarketParams(relinearise=3))
    return case, ample_bids(case)


def test_joint_design_solves_everything_and_beats_sequential(relinearised):
    case, bids = relinearised
    joint = Market(case, "CMVC_PQ").clear(bids)
    summary = joint.summary(case.params)
    assert case.baseline_needs.service.nunique() == 2
    assert summary["unmet_need_after_ac"] == pytest.approx(0.0, abs=1e-6)
    assert joint.validation.needs.empty
    solving = []
    for design in SEQUENTIAL:
        result = Market(case, design).clear(bids)
        if result.summary(case.params)["unmet_need_after_ac"] < 1e-6:
            solving.append(result.procurement_cost)
    assert solving, "at least one sequential design solves everything"
    assert joint.procurement_cost <= min(solving) + 1e-6


def test_single_service_designs_leave_the_other_need(cigre_case):
    bids = ample_bids(cigre_case)
    cm = Market(cigre_case, "CM_P").clear(bids).summary(cigre_case.params)
    vc = Market(cigre_case, "VC_Q").clear(bids).summary(cigre_case.params)
    assert cm["violation_cm_after_ac_mva"] < 0.01 < cm["violation_vc_after_ac_pu"]
    assert vc["violation_vc_after_ac_pu"] < 0.01 < vc["violation_cm_after_ac_mva"]
    params = cigre_case.params
    for summary in (cm, vc):  # what a design leaves is fixed by emergency action
        assert summary["corrective_after_ac"] > 0.5
        assert summary["curtailed_after_ac"] + summary["shed_after_ac"] == pytest.approx(
            summary["unmet_need_after_ac"])
        assert summary["curtailment_cost_after_ac"] == pytest.approx(
            params.curtailment_price * summary["curtailed_after_ac"])
        assert summary["shedding_cost_after_ac"] == pytest.approx(
            params.voll * summary["shed_after_ac"])
        assert summary["unmet_cost_after_ac"] == pytest.approx(
            summary["curtailment_cost_after_ac"] + summary["shedding_cost_after_ac"])


@pytest.mark.parametrize("design", ["CM_P", "CM_Q", "CM_PQ", "VC_P", "VC_Q", "VC_PQ",
                                    "CMVC_Q", "CM_P>VC_Q", "VC_Q>CM_P", "CM_PQ>VC_PQ"])
def test_no_stage_creates_new_violations(cigre_case, design):
    """No-harm rows: whatever a design buys, the AC state after its awards has no
    violation the baseline did not have (up to the linearisation error, here < 1e-3)."""
    result = Market(cigre_case, design).clear(ample_bids(cigre_case))
    summary = result.summary(cigre_case.params)
    assert summary["collateral_cm_after_ac_mva"] < 1e-3
    assert summary["collateral_vc_after_ac_pu"] < 1e-3
    assert summary["collateral_after_ac"] < 1e-3


def test_without_no_harm_rows_a_cm_market_overvolts_the_grid(cigre_case):
    """The single-service market of the earlier literature (no_harm = false): CM bought
    with Q lifts voltages elsewhere, which then needs MWh of emergency action."""
    case = replace(cigre_case, params=MarketParams(no_harm=False))
    summary = Market(case, "CM_Q").clear(ample_bids(cigre_case)).summary(case.params)
    assert summary["collateral_vc_after_ac_pu"] > 0.1
    assert summary["collateral_after_ac"] > 1.0


def test_corrective_emergency_action_fixes_the_ac_state(cigre_case):
    """After AC validation the unmet need is the emergency action that fixes the AC
    state: applying it in a new AC power flow removes the violations (but for the
    linearisation error of that last step)."""
    result = Market(cigre_case, "CM_P").clear(ample_bids(cigre_case))
    before = result.validation.needs
    corrective = emergency_injections(result.after_ac.emergency)
    fixed = cigre_case.evaluator.validate(combine_flex([result.flex, corrective])).needs
    assert before.need.sum() > 0.3 and result.after_ac.corrective_mwh > 1.0
    assert fixed.need.sum() < 0.05 * before.need.sum()
    assert fixed.need.max() < 2e-3


def test_offers_above_the_reservation_price_are_counted_and_never_awarded(cigre_case):
    bids = ample_bids(cigre_case)
    dear = bids.index % 3 == 0
    bids.loc[dear, "price"] = 5000.0
    case = replace(cigre_case, params=MarketParams(reservation_price=200.0))
    result = Market(case, "CMVC_PQ").clear(bids, ac_validate=False)
    assert result.summary(case.params)["offers_above_reservation"] == dear.sum()
    assert (result.awards.awarded[dear] == 0).all()
    assert result.awards.awarded[~dear].sum() > 0


@pytest.mark.parametrize("design", SINGLE_DESIGNS)
def test_products_not_admitted_are_never_awarded(cigre_case, design):
    bids = ample_bids(cigre_case)
    result = Market(cigre_case, design).clear(bids, ac_validate=False)
    admitted = parse_design(design).stages[0].products
    families = result.awards["product"].str[0]
    assert (result.awards.awarded[~families.isin(admitted)] == 0).all()
    assert result.awards.awarded.sum() > 0


def test_sequential_stage_two_sees_stage_one(cigre_case):
    result = Market(cigre_case, "CM_P>VC_Q").clear(ample_bids(cigre_case))
    awards = result.awards[result.awards.awarded > 0]
    assert set(awards.loc[awards.stage == 0, "product"].str[0]) == {"P"}
    assert set(awards.loc[awards.stage == 1, "product"].str[0]) == {"Q"}
    assert result.stats["stages"] == 2


@pytest.mark.parametrize("pricing", ["pay-as-bid", "locational"])
def test_settlement_identities(cigre_case, pricing):
    result = Market(cigre_case, "CMVC_PQ", pricing).clear(ample_bids(cigre_case))
    a = result.awards
    assert result.procurement_cost == pytest.approx(a.payment.sum())
    won = a[a.awarded > 1e-9]
    at_bid = won.price * won.awarded * won.hours
    if pricing == "pay-as-bid":
        np.testing.assert_allclose(won.payment, at_bid)
    else:
        assert (won.payment >= at_bid - 1e-6).all()
        assert result.procurement_cost >= result.cost_at_bid_prices - 1e-6


def test_engines_agree_on_cigre(cigre_case):
    bids = ample_bids(cigre_case)
    fast = Market(cigre_case, "CMVC_PQ", "locational").clear(bids, ac_validate=False)
    ref = Market(cigre_case, "CMVC_PQ", "locational", engine="cvxpy").clear(bids, ac_validate=False)
    np.testing.assert_allclose(fast.awards.awarded, ref.awards.awarded, atol=1e-6)
    np.testing.assert_allclose(fast.awards.payment, ref.awards.payment, atol=1e-4)
    merged = fast.prices.merge(ref.prices, on=["stage", "period", "bus", "product"])
    np.testing.assert_allclose(merged.price_x, merged.price_y, atol=1e-4)


@pytest.mark.slow
def test_engines_agree_on_simbench(semiurb):
    case = MarketCase.build(semiurb)
    rng = np.random.default_rng(3)
    bids = ample_bids(case, quantity=0.3, periods=[10, 11, 12])
    bids = bids[rng.random(len(bids)) < 0.25].reset_index(drop=True)
    fast = Market(case, "CMVC_PQ", "locational").clear(bids, ac_validate=False)
    ref = Market(case, "CMVC_PQ", "locational", engine="cvxpy").clear(bids, ac_validate=False)
    assert fast.awards.awarded.sum() > 0
    np.testing.assert_allclose(fast.awards.awarded, ref.awards.awarded, atol=1e-5)
    merged = fast.prices.merge(ref.prices, on=["stage", "period", "bus", "product"])
    np.testing.assert_allclose(merged.price_x, merged.price_y, atol=1e-3)


def test_warm_update_matches_a_fresh_build(cigre_case):
    bids = ample_bids(cigre_case)
    market = Market(cigre_case, "CMVC_PQ", "locational")
    first = market.clear(bids, ac_validate=False)
    assert first.stats["rebuilt"]
    repriced = bids.assign(price=bids.price * np.linspace(0.5, 1.5, len(bids)),
                           quantity=bids.quantity * 0.8)
    warm = market.clear(repriced, ac_validate=False)
    assert not warm.stats["rebuilt"] and warm.stats["warm"]
    fresh = Market(cigre_case, "CMVC_PQ", "locational").clear(repriced, ac_validate=False)
    np.testing.assert_allclose(warm.awards.awarded, fresh.awards.awarded, atol=1e-7)
    np.testing.assert_allclose(warm.awards.payment, fresh.awards.payment, atol=1e-5)
    larger = market.clear(bids.assign(quantity=bids.quantity * 2), ac_validate=False)
    assert larger.stats["rebuilt"]  # more than the LP was built for: rebuilt, not wrong


def test_a_later_stage_is_reused_warm_while_earlier_awards_stay(cigre_case):
    """CM_P>VC_Q: repricing only the Q bids leaves stage 1 (P) as it was, so stage 2
    keeps its LP and re-solves warm, with the awards a fresh market gives; repricing P
    moves stage 1 and rebuilds stage 2 at its new AC point."""
    bids = ample_bids(cigre_case, periods=[12, 13, 19, 20])
    market = Market(cigre_case, "CM_P>VC_Q")
    first = market.clear(bids, ac_validate=False)
    assert first.stages[1][1].rebuilt
    is_q = bids["product"].str.startswith("Q").to_numpy()
    repriced = bids.assign(price=np.where(is_q, bids.price * 1.7, bids.price))
    warm = market.clear(repriced, ac_validate=False)
    assert not warm.stages[1][1].rebuilt
    fresh = Market(cigre_case, "CM_P>VC_Q").clear(repriced, ac_validate=False)
    np.testing.assert_allclose(warm.awards.awarded, fresh.awards.awarded, atol=1e-7)
    np.testing.assert_allclose(warm.awards.payment, fresh.awards.payment, atol=1e-5)
    cheaper_p = bids.assign(price=np.where(is_q, bids.price, bids.price[::-1].to_numpy()))
    assert market.clear(cheaper_p, ac_validate=False).stages[1][1].rebuilt


def test_a_later_stage_is_checked_against_its_own_linearisation(cigre_case):
    """The linearisation error of a sequential design compares stage 2's prediction, made
    at the AC point after stage 1, with AC: small (another period's point would not be)."""
    result = Market(cigre_case, "CM_P>VC_Q").clear(ample_bids(cigre_case, periods=[12, 13]))
    points, _ = result.linearised_at
    assert [p.period for p in points] == list(range(cigre_case.n_periods))
    lin = result.validation.linearisation
    stage_two = result.stages[1][1]
    assert set(lin.period) <= {p.period for p in stage_two.lp.periods} and len(lin)
    assert lin.vm_error_pu.max() < 5e-3 and lin.loading_error_pct.max() < 3.0


def test_collateral_need_is_reported(cigre_case):
    """An 8 MW injection at a feeder end at night overloads and overvoltages a calm grid."""
    flex = pd.DataFrame({"period": [2], "bus": [11], "dp_mw": [8.0], "dq_mvar": [0.0]})
    report = cigre_case.evaluator.validate(flex)
    night = report.needs[report.needs.period == 2]
    assert set(night.service) == {"CM", "VC"} and (night.kind == "collateral").all()
    assert report.power_flows == 1


def test_small_flex_is_predicted_accurately(cigre_case):
    flex = pd.DataFrame({"period": [13, 13], "bus": [11, 5], "dp_mw": [-0.2, 0.0],
                         "dq_mvar": [0.0, -0.1]})
    lin = cigre_case.evaluator.validate(flex).linearisation
    assert lin.vm_error_pu.max() < 1e-4 and lin.loading_error_pct.max() < 0.1


def test_bids_naming_devices_need_a_device_table(cigre_case):
    bids = ample_bids(cigre_case).assign(device_id="pv1")
    with pytest.raises(InputError, match="device table"):
        Market(cigre_case, "CMVC_PQ").clear(bids)


def test_unknown_design_lists_valid_ones(cigre_case):
    with pytest.raises(InputError) as err:
        Market(cigre_case, "CMVC_QP")
    assert "CMVC_PQ" in str(err.value)


def test_no_bids_leaves_all_need_to_emergency_action(cigre_case):
    """Without bids the DSO fixes everything itself: the market's unmet need is the
    baseline's emergency action, and the AC check adds only a small correction."""
    empty = ample_bids(cigre_case).iloc[:0]
    result = Market(cigre_case, "CMVC_PQ").clear(empty)
    summary = result.summary(cigre_case.params)
    baseline = cigre_case.baseline_emergency.emergency_mwh
    assert result.procurement_cost == 0.0 and baseline > 5.0
    assert summary["unmet_need_before"] == pytest.approx(baseline, rel=1e-9)
    assert summary["unmet_need_after_ac"] == pytest.approx(baseline, rel=0.05)
    assert summary["unmet_need_after_ac"] >= summary["unmet_need_before"]


def test_relinearise_parameter_is_validated():
    with pytest.raises(InputError, match="relinearise"):
        replace(MarketParams(), relinearise=-1)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1), st.sampled_from(["pay-as-bid", "locational"]),
       st.sampled_from((*SINGLE_DESIGNS, "CM_P>VC_Q")))
def test_fuzz_random_bid_sets_never_raise(cigre_case, seed, pricing, design):
    """Random bids on the real grid: clearing never raises and the money adds up."""
    rng = np.random.default_rng(seed)
    bids = ample_bids(cigre_case, seed=seed)
    keep = rng.random(len(bids)) < rng.uniform(0.0, 1.0)
    bids = bids[keep].assign(quantity=lambda b: rng.uniform(0, 2, len(b)) * rng.integers(0, 2,
                                                                                       len(b)),
                             price=lambda b: rng.uniform(0, 1000, len(b)))  # < 0 is refused
    result = Market(cigre_case, design, pricing).clear(bids.reset_index(drop=True),
                                                       ac_validate=rng.random() < 0.3)
    a = result.awards
    assert result.procurement_cost == pytest.approx(a.payment.sum())
    assert ((a.awarded >= -1e-9) & (a.awarded <= a.quantity + 1e-9)).all()
    won = a[a.awarded > 1e-9]
    at_bid = won.price * won.awarded * won.hours
    if pricing == "pay-as-bid":
        np.testing.assert_allclose(won.payment, at_bid, atol=1e-9)
    else:
        assert (won.payment >= at_bid - 1e-5 * max(1.0, abs(at_bid).max())).all()
