"""Jacobian sensitivities against finite-difference AC power flows."""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pytest

from lfm_abm.errors import InputError
from lfm_abm.network.grids import default_scenario
from lfm_abm.network.operating_points import run_power_flow
from lfm_abm.network.scenarios import period_injections
from lfm_abm.network.sensitivities import sensitivities

STEP = 0.01  # MW / MVAr


def _state(net, from_end):
    # Follow the line end that carries more current at the base point: i_ka is the
    # max of both ends and has a kink where they are equal, the sensitivity does not.
    line_ka = net.res_line.i_from_ka.where(from_end, net.res_line.i_to_ka)
    return (net.res_bus.vm_pu.copy(), line_ka, net.res_trafo.loading_percent.copy())


def finite_difference(net, bus, kind, step=STEP):
    """Central difference of |V|, line kA and trafo % for an injection at `bus`."""
    probe = pp.create_sgen(net, bus=int(bus), p_mw=0.0, q_mvar=0.0, name="probe")
    column = "p_mw" if kind == "p" else "q_mvar"
    from_end = net.res_line.i_from_ka >= net.res_line.i_to_ka
    states = []
    for sign in (+1, -1):
        net.sgen.at[probe, column] = sign * step
        run_power_flow(net)
        states.append(_state(net, from_end))
    net.sgen.drop(probe, inplace=True)
    run_power_flow(net)
    return [(plus - minus) / (2 * step) for plus, minus in zip(*states, strict=True)]


def relative_errors(net, sens, buses):
    """Max relative error of voltage, loaded-line current and trafo loading sensitivities."""
    worst = {"v": 0.0, "i": 0.0, "t": 0.0}
    loaded = net.res_line.loading_percent > 30
    for bus in buses:
        for kind in ("p", "q"):
            dv, di, dt = finite_difference(net, bus, kind)
            for key, fd, lin, mask in (
                ("v", dv, getattr(sens, f"dv_d{kind}")[bus], None),
                ("i", di, getattr(sens, f"di_d{kind}")[bus], loaded),
                ("t", dt, getattr(sens, f"dt_d{kind}")[bus], None),
            ):
                fd = fd.loc[lin.index]
                keep = fd.abs() > 1e-3 * fd.abs().max()
                if mask is not None:
                    keep &= mask.loc[lin.index]
                if keep.any():
                    err = ((lin[keep] - fd[keep]).abs() / fd[keep].abs()).max()
                    worst[key] = max(worst[key], float(err))
    return worst


def _at_period(net, period):
    injections = period_injections(net, default_scenario(net))
    injections.apply(net, period)
    run_power_flow(net)
    return net


@pytest.mark.parametrize("period", [13, 20])  # midday reverse flow, evening peak
def test_cigre_sensitivities_match_finite_differences(cigre, period):
    net = _at_period(cigre, period)
    sens = sensitivities(net)
    err = relative_errors(net, sens, buses=[3, 5, 8, 11, 13, 14])
    assert err["v"] < 0.01, err
    assert err["i"] < 0.05, err
    assert err["t"] < 0.05, err


@pytest.mark.slow
def test_simbench_sensitivities_match_finite_differences(semiurb):
    net = _at_period(semiurb, 11)
    sens = sensitivities(net)
    rng = np.random.default_rng(1)
    buses = rng.choice(np.asarray(sens.buses), size=4, replace=False)
    err = relative_errors(net, sens, buses)
    assert err["v"] < 0.01, err
    assert err["i"] < 0.05, err


def test_signs_follow_injection_convention(cigre):
    net = _at_period(cigre, 13)
    sens = sensitivities(net)
    # Injecting at a feeder-end bus raises its voltage...
    assert sens.dv_dp.at[11, 11] > 0 and sens.dv_dq.at[11, 11] > 0
    # ...and, with PV reverse flow on Line 1-2 at noon, more injection loads it more.
    assert net.res_line.p_from_mw.at[0] < 0
    assert sens.di_dp.at[0, 11] > 0


def test_base_power_does_not_change_per_mw_sensitivities(cigre):
    run_power_flow(cigre)
    base = sensitivities(cigre)
    cigre.sn_mva = 10.0
    run_power_flow(cigre)
    scaled = sensitivities(cigre)
    for name in ("dv_dp", "dv_dq", "di_dp", "di_dq", "dt_dp", "dt_dq"):
        np.testing.assert_allclose(getattr(scaled, name), getattr(base, name), rtol=1e-6,
                                   atol=1e-12, err_msg=name)


def test_selected_columns_equal_full_matrix(cigre):
    run_power_flow(cigre)
    full = sensitivities(cigre)
    some = sensitivities(cigre, buses=[11, 4])
    assert list(some.buses) == [11, 4]
    np.testing.assert_allclose(some.dv_dq, full.dv_dq[[11, 4]])
    np.testing.assert_allclose(some.di_dp, full.di_dp[[11, 4]])
    with pytest.raises(InputError, match="PQ bus"):
        sensitivities(cigre, buses=[0])  # the slack bus has no injection column


def test_buses_merged_by_switch_share_a_column(cigre):
    extra = pp.create_bus(cigre, vn_kv=20.0, name="merged into 5")
    pp.create_switch(cigre, bus=5, element=extra, et="b", closed=True)
    run_power_flow(cigre)
    sens = sensitivities(cigre)
    np.testing.assert_allclose(sens.dv_dp[extra], sens.dv_dp[5])
    np.testing.assert_allclose(sens.dv_dp.loc[extra], sens.dv_dp.loc[5])
    dv, _, _ = finite_difference(cigre, extra, "p")
    np.testing.assert_allclose(sens.dv_dp.at[5, extra], dv.at[5], rtol=0.01)


def test_out_of_service_line_has_no_row_and_others_stay_exact(cigre):
    cigre.switch.loc[cigre.switch.element == 12, "closed"] = True  # S2: feed 5-6 via 7
    cigre.line.at[3, "in_service"] = False
    run_power_flow(cigre)
    sens = sensitivities(cigre)
    assert 3 not in sens.di_dp.index and 2 in sens.di_dp.index
    err = relative_errors(cigre, sens, buses=[5, 10])
    assert err["v"] < 0.01 and err["i"] < 0.05, err


def test_element_scaling_multiplies_the_grid_injection(cigre):
    """A change of d in p_mw of a load with scaling s is an injection of -s*d."""
    run_power_flow(cigre)
    sens = sensitivities(cigre)
    load = cigre.load.index[cigre.load.bus == 11][0]
    cigre.load.at[load, "scaling"] = 0.5
    run_power_flow(cigre)
    before = cigre.res_bus.vm_pu.at[11]
    cigre.load.at[load, "p_mw"] += 0.02
    run_power_flow(cigre)
    change = cigre.res_bus.vm_pu.at[11] - before
    np.testing.assert_allclose(change, -0.5 * 0.02 * sens.dv_dp.at[11, 11], rtol=0.02)


def test_requires_a_converged_power_flow(cigre):
    with pytest.raises(InputError, match="power flow"):
        sensitivities(cigre)
