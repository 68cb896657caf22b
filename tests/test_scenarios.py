"""Scenarios and operating points on the built-in grids."""

from __future__ import annotations

import pytest

from lfm_abm.errors import InputError, PowerFlowError
from lfm_abm.network.grids import default_scenario
from lfm_abm.network.needs import find_needs
from lfm_abm.network.operating_points import operating_points
from lfm_abm.network.scenarios import EV_LOAD_TYPE, Scenario, period_injections


def test_cigre_default_day_has_both_kinds_of_need(cigre):
    points = list(operating_points(cigre, default_scenario(cigre)))
    assert len(points) == 24
    needs = find_needs(points)
    assert set(needs.service) == {"CM", "VC"}
    midday = needs[needs.label == "h13"]
    assert {"CM", "VC"} <= set(midday.service)  # PV reverse flow: overload and overvoltage
    evening = needs[(needs.label == "h20") & (needs.service == "VC")]
    assert (evening.value < 0.95).all() and len(evening)  # EV evening peak: undervoltage


@pytest.mark.slow
def test_simbench_default_day_has_both_kinds_of_need(semiurb):
    scenario = default_scenario(semiurb)
    assert scenario.days == ("2016-07-25",)
    needs = find_needs(operating_points(semiurb, scenario))
    assert set(needs.service) == {"CM", "VC"}


def test_scenarios_do_not_compound(cigre):
    """A second scenario on the same net starts again from the reference values."""
    scenario = Scenario(pv_scale=2.0)
    first = period_injections(cigre, scenario)
    first.apply(cigre, 13)
    second = period_injections(cigre, scenario)
    assert second.p_mw["sgen"].equals(first.p_mw["sgen"])


def test_scale_factors_apply_by_kind(cigre):
    base = period_injections(cigre, Scenario())
    scaled = period_injections(cigre, Scenario(pv_scale=2.0, load_scale=0.5))
    pv = (cigre.sgen.type == "PV").to_numpy()
    assert (scaled.p_mw["sgen"].loc[:, pv] == 2 * base.p_mw["sgen"].loc[:, pv]).all().all()
    assert (scaled.p_mw["sgen"].loc[:, ~pv] == base.p_mw["sgen"].loc[:, ~pv]).all().all()
    assert scaled.p_mw["load"].sum().sum() == pytest.approx(0.5 * base.p_mw["load"].sum().sum())


def test_ev_loads_follow_the_evening_shape(cigre):
    injections = period_injections(cigre, Scenario(ev_peak_mw=2.0))
    ev = (cigre.load.type == EV_LOAD_TYPE).to_numpy()
    assert ev.sum() > 0
    assert not cigre.load.loc[ev, "bus"].isin(cigre.trafo.lv_bus).any()
    totals = injections.p_mw["load"].loc[:, ev].sum(axis=1)
    assert totals.max() == pytest.approx(2.0) and totals.idxmax() == 19
    again = period_injections(cigre, Scenario(ev_peak_mw=1.0))  # resized, not added twice
    assert (cigre.load.type == EV_LOAD_TYPE).sum() == ev.sum()
    assert again.p_mw["load"].loc[:, (cigre.load.type == EV_LOAD_TYPE).to_numpy()].sum(
        axis=1).max() == pytest.approx(1.0)


def test_non_convergence_names_the_period(cigre):
    with pytest.raises(PowerFlowError, match="period h19"):
        list(operating_points(cigre, Scenario(load_scale=4.0, hours=(3, 19))))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"hours": (25,)}, "scenario.hours[0]"),
        ({"pv_scale": -1.0}, "scenario.pv_scale"),
        ({"days": ("2016-13-01",)}, "scenario.days"),
        ({"days": ("2019-07-01",)}, "scenario.days"),
        ({"period_hours": 0}, "scenario.period_hours"),
    ],
)
def test_bad_scenarios_name_the_field(fields, field):
    with pytest.raises(InputError) as err:
        Scenario(**fields)
    assert err.value.field == field


def test_scenario_from_dict_rejects_unknown_fields():
    with pytest.raises(InputError) as err:
        Scenario.from_dict({"pv_scal": 1.2}, source="studies/x.toml")
    assert "studies/x.toml" in str(err.value) and "pv_scale" in str(err.value)
