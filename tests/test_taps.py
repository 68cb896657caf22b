"""The DSO's tap changer: its measured effect, its schedule, and the market after it."""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pandas as pd
import pytest
from tap_grid import NOON, tap_grid
from toy import bids_frame

from lfm_abm.cli import main
from lfm_abm.day import shared_case, with_dso_tools
from lfm_abm.market.clearing import Market, MarketCase
from lfm_abm.market.dso_alone import least_cost_taps, taps_pay
from lfm_abm.market.engines import SolverError
from lfm_abm.market.params import MarketParams
from lfm_abm.market.tap_schedule import TapSchedule
from lfm_abm.network.grids import load_grid
from lfm_abm.network.needs import NeedLimits
from lfm_abm.network.operating_points import run_power_flow
from lfm_abm.network.scenarios import Scenario
from lfm_abm.network.sensitivities import sensitivities
from lfm_abm.network.taps import tap_changers, tap_effects

#: Feeder-wide overvoltage: the HV side at 1.05 p.u. and 1.9 MW of PV at each of six buses
#: put every MV bus above 1.05 (up to 1.060).
EVERYWHERE_HIGH = (1.05, 2.0, 2.0)
#: Opposite needs: PV on feeder A (its end at 1.059), load on feeder B (its end at 0.947).
OPPOSITE = (1.0, 3.0, -4.5)


def case_of(args: tuple, params: MarketParams | None = None, km: float = 2.0) -> MarketCase:
    return MarketCase.build(tap_grid(*args, km=km), NOON, params=params or MarketParams())


def test_simbench_parallel_transformers_are_one_tap_changer():
    net = load_grid("simbench-semiurb")
    pp.runpp(net)
    changers = tap_changers(net)
    assert [(c.trafos, c.start, c.low, c.high, c.step_percent) for c in changers] == [
        ((0, 1), 0, -9, 9, 1.5)]
    assert (net.trafo.tap_changer_type == "Ratio").all()  # SimBench's leave it unset
    assert tap_changers(load_grid("cigre-mv")) == []  # no taps on CIGRE's transformers


def test_one_tap_step_predicts_the_ac_state_two_steps_away():
    """The measured effect of a step, x2, against an AC power flow at +2 steps.

    The ratio 1/(1 + 0.015 k) is not linear in k: a central difference over +-1 step
    predicts +2 steps 0.09 % of a p.u. too low (2 x 0.015006 against 0.029126).
    """
    case = case_of(EVERYWHERE_HIGH)
    net = case.net
    (changer,) = tap_changers(net)
    (effect,) = tap_effects(net, case.injections, case.points, changer)
    assert effect.vm_pu.loc[7] == pytest.approx(-0.015, abs=0.002)  # a step: about -1.5 %
    net.trafo.loc[list(changer.trafos), "tap_pos"] = 2
    case.injections.apply(net, 0)
    run_power_flow(net)
    predicted = case.points[0].vm_pu + 2 * effect.vm_pu
    assert np.abs(predicted - net.res_bus.vm_pu.loc[predicted.index]).max() < 1.2e-3
    line = case.points[0].sens.line_phasors.current + 2 * effect.line
    assert np.abs(np.abs(line) - net.res_line.i_ka.loc[line.index]).max() < 2e-3


def test_the_tap_alone_fixes_a_feeder_wide_overvoltage_and_the_market_buys_nothing():
    case = case_of(EVERYWHERE_HIGH, MarketParams(dso_tools=("oltc",)))
    assert case.baseline_emergency.emergency_mwh > 5  # without taps: ~11.6 MWh curtailed
    day = with_dso_tools(case)
    assert day.taps is not None and day.taps.steps == ((1,),)  # one step down in voltage
    assert day.baseline_needs.empty  # on the AC state at the new tap
    alone = day.counterfactual
    assert alone.dso_alone_mwh == 0
    assert alone.dso_alone_cost == pytest.approx(2.0)  # a step out and back: 2 x 1 EUR
    assert alone.no_market_cost == pytest.approx(100 * alone.no_market_mwh)
    bids = bids_frame([("q4", 4, 0, "Q_down", 5.0, 10.0), ("q7", 7, 0, "Q_down", 5.0, 10.0)])
    tapped = Market(day, "VC_Q").clear(bids)
    without = Market(case, "VC_Q").clear(bids)
    assert tapped.awards.awarded.sum() == 0 and tapped.after_ac.corrective_mwh == 0
    assert without.awards.awarded.sum() > 1  # the same market buys Q without the tap


def test_opposite_needs_on_two_feeders_make_the_tap_useless():
    """A step that lowers feeder A's overvoltage deepens feeder B's undervoltage.

    With curtailment priced as lost load, a MWh of either action is worth the same and
    a step only moves need from one feeder to the other: the tap stays.
    """
    case = case_of(OPPOSITE, MarketParams(curtailment_price=1000.0), km=8.0)
    needs = case.baseline_needs
    assert set(needs.limit) == {0.95, 1.05}  # both sides of the band
    taps = least_cost_taps(case)
    assert taps.steps == ((0,),) and taps.moves == 0
    day = with_dso_tools(case)
    assert day.counterfactual.dso_alone_cost == pytest.approx(day.counterfactual.no_market_cost)


def test_with_cheap_curtailment_the_tap_trades_load_shed_for_curtailment():
    """The same feeders at the default prices: raising every voltage a step ends the
    (dear) load shedding on feeder B and costs more (cheap) curtailment on feeder A."""
    case = case_of(OPPOSITE, km=8.0)
    taps = least_cost_taps(case)
    assert taps.steps == ((-1,),)
    tapped = case.with_taps(taps)
    before, after = (c.baseline_emergency.emergency for c in (case, tapped))
    assert set(before.action) == {"curtail", "shed"} and set(after.action) == {"curtail"}
    assert after.mw.sum() > before[before.action == "curtail"].mw.sum()
    assert tapped.baseline_emergency_cost + tapped.tap_cost < case.baseline_emergency_cost


def test_sensitivities_at_moved_taps_use_that_periods_transformer_ratio():
    """A day whose taps differ per period: each period is linearised at its own taps."""
    case = MarketCase.build(tap_grid(*EVERYWHERE_HIGH), Scenario(hours=(11, 12)))
    (changer,) = tap_changers(case.net)
    tapped = case.with_taps(TapSchedule((changer,), ((0,), (4,))))
    flex = pd.DataFrame({"period": [0, 1], "bus": [4, 4], "dp_mw": [-0.5, -0.5],
                         "dq_mvar": [0.0, 0.0]})
    evaluator = tapped.evaluator
    points = evaluator.linearised(flex, evaluator.evaluate(flex))
    for period, position in ((0, 0), (1, 4)):
        net = copy.deepcopy(tapped.net)
        tapped.injections.apply(net, period)
        assert (net.trafo.tap_pos == position).all()
        net.sgen.loc[net.sgen.name == "lfm flex 4", "p_mw"] = -0.5
        run_power_flow(net)
        reference = sensitivities(net)
        ours = points[period].sens
        assert np.allclose(ours.dv_dp.to_numpy(), reference.dv_dp.to_numpy(), atol=1e-9)
        assert np.allclose(ours.line_phasors.d_dq.to_numpy(),
                           reference.line_phasors.d_dq.to_numpy(), atol=1e-9)


def test_a_study_day_with_the_tap_changer_carries_both_counterfactuals(tmp_path):
    """Through the study's cached days: the tapped day for "oltc", both costs either way."""
    grid = tmp_path / "taps.json"
    pp.to_json(tap_grid(*EVERYWHERE_HIGH), str(grid))
    plain = shared_case(str(grid), NOON, None, NeedLimits(), MarketParams())
    tapped = shared_case(str(grid), NOON, None, NeedLimits(), MarketParams(dso_tools=("oltc",)))
    assert plain.taps is None and tapped.taps.steps == ((1,),)
    assert plain.counterfactual == tapped.counterfactual
    assert tapped.counterfactual.dso_alone_cost == pytest.approx(2.0)
    assert plain.baseline_emergency_cost == pytest.approx(tapped.counterfactual.no_market_cost)
    assert tapped.baseline_emergency.emergency_mwh == 0


def test_clear_on_the_command_line_reports_the_dso_alone_and_clears_at_its_taps(
        tmp_path, capsys):
    grid = tmp_path / "taps.json"
    pp.to_json(tap_grid(*EVERYWHERE_HIGH), str(grid))
    bids = tmp_path / "bids.csv"
    bids.write_text("bid_id,provider_id,bus,period,product,quantity,price\n"
                    "a,f,4,12,Q_down,5,10\nb,g,7,12,Q_down,5,10\n")
    args = ["clear", "--grid", str(grid), "--design", "VC_Q", "--bids", str(bids)]
    assert main([*args, "--dso-tools", "oltc"]) == 0
    out = capsys.readouterr().out
    assert "cleared at the DSO's taps" in out and ", 0 awarded" in out
    alone = out.split("the DSO alone")[1]
    assert float(alone.split(" MWh")[0].split(")")[1]) == 0.0  # the taps fix the day
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "cleared at the DSO's taps" not in out and ", 0 awarded" not in out
    assert main([*args, "--dso-tools", "capacitor"]) == 2
    err = capsys.readouterr().err
    assert "--dso-tools" in err and "'capacitor'" in err and "oltc" in err


def test_every_period_is_measured_around_its_own_position():
    """Three periods at the grid's taps: each period's step is measured around the start
    position, as a period measured alone is (no drift from one period to the next)."""
    case = MarketCase.build(tap_grid(*EVERYWHERE_HIGH), Scenario(hours=(10, 11, 12)))
    (changer,) = tap_changers(case.net)
    effects = tap_effects(copy.deepcopy(case.net), case.injections, case.points, changer)
    for period in range(3):
        alone = MarketCase.build(tap_grid(*EVERYWHERE_HIGH),
                                 Scenario(hours=((10, 11, 12)[period],)))
        (own,) = tap_effects(alone.net, alone.injections, alone.points, changer)
        assert np.allclose(effects[period].vm_pu, own.vm_pu, atol=1e-10)
        assert np.allclose(effects[period].trafo, own.trafo, atol=1e-10)


def test_a_step_predicts_the_transformer_current_at_the_end_its_rows_watch():
    """Power flows HV to LV: the rows watch the transformer's HV end (the more loaded one
    at the start position). Differenced at that end, the step's effect predicts the AC
    HV-end loading; differenced at the other end it would point the opposite way.

    The LV end's loading rises ~1.5 % a step (the same power at a lower voltage) and takes
    over pandapower's max(HV, LV) loading: the linear model does not see that kink, the
    AC check of the tapped day does (docs/model.md 6.1)."""
    case = case_of((1.0, -4.0, -4.0))
    net = case.net
    (changer,) = tap_changers(net)
    (effect,) = tap_effects(copy.deepcopy(net), case.injections, case.points, changer)
    base = case.points[0].sens.trafo_phasors.current
    trafo = net.trafo.loc[base.index]
    for steps in (-2, -1, 1, 2):
        net.trafo.loc[list(changer.trafos), "tap_pos"] = steps
        case.injections.apply(net, 0)
        run_power_flow(net)
        hv = (net.res_trafo.i_hv_ka.loc[base.index] * trafo.vn_hv_kv * np.sqrt(3)
              / trafo.sn_mva * 100)
        predicted = np.abs(base + steps * effect.trafo)
        assert np.abs(predicted - hv).max() < 0.02 * abs(steps)


def test_the_dso_alone_schedule_does_not_depend_on_the_markets_priority():
    """Market-first puts offers before emergency action; the DSO alone has no offers, so
    its schedule and cost are those of least-cost."""
    cases = [case_of(OPPOSITE, MarketParams(emergency_priority=priority, tap_step_cost=600.0),
                     km=8.0) for priority in ("least-cost", "market-first")]
    first, second = (least_cost_taps(case) for case in cases)
    assert first == second and first.steps == ((0,),)


def test_taps_that_do_not_pay_in_ac_are_not_kept(monkeypatch):
    """The schedule is chosen on a linear model; the DSO keeps it only where it pays on the
    AC state. Three steps down on the opposite feeders deepen feeder B's undervoltage (and
    its load shedding): the DSO alone is then the day at the grid's taps."""
    case = case_of(OPPOSITE, MarketParams(dso_tools=("oltc",)), km=8.0)
    (changer,) = tap_changers(case.net)
    bad = TapSchedule((changer,), ((3,),))
    assert not taps_pay(case, case.with_taps(bad))
    monkeypatch.setattr("lfm_abm.day.least_cost_taps", lambda *args: bad)
    day = with_dso_tools(case)
    alone = day.counterfactual
    assert day.taps is None and day.tap_cost == 0 and alone.tap_moves == 0
    assert alone.dso_alone_cost == pytest.approx(alone.no_market_cost)


def test_a_failed_tap_schedule_is_unknown_not_zero(monkeypatch):
    """Without the tap changer in the design the DSO alone becomes NaN (with a warning) and
    the day goes on; a design that uses it stops with the error."""
    def fail(*args):
        raise SolverError("tap schedule: HiGHS ended with Infeasible")

    monkeypatch.setattr("lfm_abm.day.least_cost_taps", fail)
    with pytest.warns(UserWarning, match="DSO alone is unknown"):
        day = with_dso_tools(case_of(EVERYWHERE_HIGH))
    alone = day.counterfactual
    assert np.isnan(alone.dso_alone_cost) and np.isnan(alone.tap_moves)
    assert alone.no_market_cost > 0 and day.taps is None
    with pytest.raises(SolverError):
        with_dso_tools(case_of(EVERYWHERE_HIGH, MarketParams(dso_tools=("oltc",))))
