"""Needs detection on a hand-built net with a known overload and a known overvoltage."""

from __future__ import annotations

import math

import pandapower as pp
import pytest

from lfm_abm.errors import InputError
from lfm_abm.network.needs import NeedLimits, find_needs
from lfm_abm.network.operating_points import run_power_flow, snapshot


def two_feeder_net():
    """Slack at 1.0 p.u.; feeder A carries a load over a weak line, feeder B a big PV."""
    net = pp.create_empty_network(sn_mva=1.0)
    slack, a, b = (pp.create_bus(net, vn_kv=20.0, name=n) for n in ("slack", "A", "B"))
    pp.create_ext_grid(net, slack, vm_pu=1.0)
    pp.create_line_from_parameters(net, slack, a, length_km=1.0, r_ohm_per_km=0.2,
                                   x_ohm_per_km=0.1, c_nf_per_km=0.0, max_i_ka=0.1)
    pp.create_line_from_parameters(net, slack, b, length_km=10.0, r_ohm_per_km=0.4,
                                   x_ohm_per_km=0.3, c_nf_per_km=0.0, max_i_ka=0.4)
    pp.create_load(net, a, p_mw=4.0, q_mvar=0.0)
    pp.create_sgen(net, b, p_mw=6.0, q_mvar=0.0)
    run_power_flow(net)
    return net


def test_known_overload_and_overvoltage():
    net = two_feeder_net()
    op = snapshot(net, period=0, label="test", hours=1.0)
    needs = find_needs([op], NeedLimits())
    cm = needs[needs.service == "CM"]
    vc = needs[needs.service == "VC"]
    # Line 0 carries ~4 MW at 20 kV: ~0.116 kA against 0.1 kA.
    assert list(cm.element_id) == [0]
    i_ka = net.res_line.i_ka.at[0]
    assert i_ka > 0.1
    assert cm.need_ka.iloc[0] == pytest.approx(i_ka - 0.1)
    assert cm.need.iloc[0] == pytest.approx(math.sqrt(3) * 20.0 * (i_ka - 0.1))
    assert cm.unit.iloc[0] == "MVA"
    # Bus B is pushed above 1.05 p.u. by the PV; only B violates.
    v_b = net.res_bus.vm_pu.at[2]
    assert v_b > 1.05
    assert list(vc.element_id) == [2]
    assert vc.need.iloc[0] == pytest.approx(v_b - 1.05)


def test_margin_and_tolerance_widen_the_needs():
    net = two_feeder_net()
    op = snapshot(net, period=0, label="test", hours=1.0)
    strict = find_needs([op], NeedLimits(cm_margin=0.9, vc_tolerance=0.01))
    loose = find_needs([op], NeedLimits())
    cm_strict = strict[strict.service == "CM"].need.iloc[0]
    cm_loose = loose[loose.service == "CM"].need.iloc[0]
    assert cm_strict == pytest.approx(cm_loose + math.sqrt(3) * 20.0 * 0.01)
    vc_strict = strict[strict.service == "VC"].need.iloc[0]
    vc_loose = loose[loose.service == "VC"].need.iloc[0]
    assert vc_strict == pytest.approx(vc_loose + 0.01)


def test_undervoltage_is_a_need_below_the_band():
    net = two_feeder_net()
    net.sgen.at[0, "p_mw"] = 0.0
    net.load.at[0, "p_mw"] = 0.0
    pp.create_load(net, 2, p_mw=6.0)
    run_power_flow(net)
    op = snapshot(net, period=3, label="evening", hours=1.0)
    vc = find_needs([op]).query("service == 'VC'")
    assert list(vc.element_id) == [2]
    assert vc.need.iloc[0] == pytest.approx(0.95 - net.res_bus.vm_pu.at[2])
    assert vc.period.iloc[0] == 3 and vc.label.iloc[0] == "evening"


def test_no_needs_gives_an_empty_table_with_columns():
    net = two_feeder_net()
    net.load.at[0, "p_mw"] = 0.5
    net.sgen.at[0, "p_mw"] = 0.5
    run_power_flow(net)
    needs = find_needs([snapshot(net, 0, "calm", 1.0)])
    assert needs.empty and "need" in needs.columns


@pytest.mark.parametrize("bad", [{"vmin": 1.1}, {"cm_margin": 0.0}, {"vc_tolerance": 0.2}])
def test_bad_limits_are_rejected(bad):
    with pytest.raises(InputError):
        NeedLimits(**bad)


def test_limits_from_dict_names_unknown_field():
    with pytest.raises(InputError, match=r"limits\.vmn"):
        NeedLimits.from_dict({"vmn": 0.9}, source="study.toml")


def test_trafo_need_uses_the_derated_rating():
    """A trafo derated to df = 0.8 is at 100 % loading at 0.8 x sn_mva: need in MVA uses it."""
    net = pp.create_empty_network()
    hv, lv = pp.create_bus(net, vn_kv=110.0), pp.create_bus(net, vn_kv=20.0)
    pp.create_ext_grid(net, hv)
    pp.create_transformer(net, hv, lv, std_type="25 MVA 110/20 kV")
    net.trafo.at[0, "df"] = 0.8
    pp.create_load(net, lv, p_mw=24.0)
    run_power_flow(net)
    op = snapshot(net, period=0, label="t", hours=1.0)
    cm = find_needs([op]).query("element == 'trafo'")
    loading = net.res_trafo.loading_percent.at[0]
    assert loading > 100
    assert cm.need.iloc[0] == pytest.approx((loading - 100) / 100 * 25.0 * 0.8)
