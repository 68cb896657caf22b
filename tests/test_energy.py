"""Energy-limited flexibility: batteries with a state of charge, deferred energy that
comes back (rebound). Cases solved on paper, then the accounts checked from the awards."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_market_golden import ENGINES, clear
from toy import assert_accounts_kept, bids_frame, emergency_at, toy_point

from lfm_abm.agents.population import load_population
from lfm_abm.errors import InputError
from lfm_abm.market.devices import Devices
from lfm_abm.market.energy import (
    energy_kpis,
    energy_states,
    shift_account,
    storage_account,
    validate_accounts,
)
from lfm_abm.market.params import MarketParams
from lfm_abm.model import LFMModel, ModelSettings


def awards_of(bids, awarded, points):
    hours = np.array([points[t].hours for t in bids.period])
    return bids.assign(awarded=awarded.to_numpy(), hours=hours)


def battery_case():
    """Bus 1, three hours. In hour 1 the line carries 11 MVA (limit 10) and 1 MW injected
    at bus 1 relieves it by 0.5 MVA: 2 MW of P_up are needed. A battery (1.5 MW, 2 MWh,
    1 MWh stored, at least 1 MWh again at the end, 81 % round trip, so 0.9 each way)
    discharges at 50 EUR/MWh and charges at 20 (hour 0) or 30 (hour 2); a load sheds
    at 200.

    Discharging 1 MW costs 50 plus 1 / 0.81 MWh of recharge at 30 at the margin
    (87 EUR) < 200: the battery discharges its full 1.5 MW, drawing 1.5 / 0.9 = 1.667 MWh,
    and the load gives the other 0.5 MW. To end at 1 MWh it must take in 1.667 MWh, i.e.
    1.667 / 0.9 = 1.852 MWh of charging: hour 0 is cheaper, but the battery is full
    (2 MWh) after 1.111 MWh there; the other 0.741 MWh come in hour 2.
    Cost 1.5 x 50 + 0.5 x 200 + 1.111 x 20 + 0.741 x 30 = 219.44 EUR.
    """
    points = [toy_point(t, line_mva=11.0 if t == 1 else 5.0, dline_dp=(-0.5, 0.0))
              for t in range(3)]
    bids = bids_frame([("dis1", 1, 1, "P_up", 1.5, 50.0, "bat"),
                       ("ch0", 1, 0, "P_down", 1.5, 20.0, "bat"),
                       ("ch1", 1, 1, "P_down", 1.5, 20.0, "bat"),
                       ("ch2", 1, 2, "P_down", 1.5, 30.0, "bat"),
                       ("dis0", 1, 0, "P_up", 1.5, 50.0, "bat"),
                       ("dis2", 1, 2, "P_up", 1.5, 50.0, "bat"),
                       ("load", 1, 1, "P_up", 1.0, 200.0)])
    account = storage_account("bat", np.arange(3), 2.0, 1.0, 1.0, 0.81)
    return points, bids, Devices(energy=account)


@pytest.mark.parametrize("engine", ENGINES)
def test_battery_state_of_charge_splits_its_recharge(engine):
    points, bids, devices = battery_case()
    result, awarded, payment, _ = clear(points, bids, "CM_P", devices=devices, engine=engine,
                                        emergency=emergency_at({}, {1: 5.0}, periods=3))
    assert awarded.to_dict() == pytest.approx({
        "dis1": 1.5, "ch0": 1 / 0.9, "ch1": 0.0, "ch2": 1.5 / 0.81 - 1 / 0.9, "dis0": 0.0,
        "dis2": 0.0, "load": 0.5}, abs=1e-6)
    assert result.solution.objective == pytest.approx(
        75.0 + 100.0 + 20 / 0.9 + 30 * (1.5 / 0.81 - 1 / 0.9), rel=1e-7)
    assert payment.sum() == pytest.approx(result.solution.objective)
    assert result.emergency_mwh == pytest.approx(0.0, abs=1e-9)
    awards = awards_of(bids, awarded, points)
    assert_accounts_kept(awards, devices.energy)
    states = energy_states(devices.energy, awards, awarded.to_numpy(), awards.hours.to_numpy())
    np.testing.assert_allclose(states.soc_mwh, [2.0, 2.0 - 1.5 / 0.9, 1.0], atol=1e-6)


def test_without_energy_limits_the_battery_sells_energy_it_does_not_have():
    """The same case cleared as if the battery had no memory: it discharges without
    charging at all, which the accounts reject."""
    points, bids, devices = battery_case()
    _, awarded, _, _ = clear(points, bids, "CM_P", devices=devices,
                             params=MarketParams(energy_limits=False),
                             emergency=emergency_at({}, {1: 5.0}, periods=3))
    assert awarded["dis1"] == pytest.approx(1.5) and awarded[["ch0", "ch2"]].sum() == 0
    with pytest.raises(AssertionError):
        assert_accounts_kept(awards_of(bids, awarded, points), devices.energy)


def ev_case(recovery_line_mva):
    """An EV fleet at bus 1 charges 2 MW in hour 0, when the line is at 10.5 MVA (limit
    10) and each MW less charging relieves it by 0.5 MVA: defer 1 MW (40 EUR/MWh). The
    deferred MWh must come back in hour 1 (10 EUR/MWh) or hour 2 (25 EUR/MWh), and
    every MW of recovery loads the line by 0.5 MVA again."""
    points = [toy_point(0, line_mva=10.5, dline_dp=(-0.5, 0.0)),
              toy_point(1, line_mva=recovery_line_mva, dline_dp=(-0.5, 0.0)),
              toy_point(2, line_mva=5.0, dline_dp=(-0.5, 0.0))]
    bids = bids_frame([("defer", 1, 0, "P_up", 2.0, 40.0, "ev"),
                       ("back1", 1, 1, "P_down", 2.0, 10.0, "ev"),
                       ("back2", 1, 2, "P_down", 2.0, 25.0, "ev")])
    return points, bids, Devices(energy=shift_account("ev", np.arange(3)))


@pytest.mark.parametrize("engine", ENGINES)
def test_ev_rebound_is_moved_away_from_a_line_it_would_overload(engine):
    """In hour 1 the line is at 9.8 MVA: only 0.4 MW of recovery fits below 10 MVA, so
    the other 0.6 MWh come back in hour 2 although it is dearer:
    cost 40 + 0.4 x 10 + 0.6 x 25 = 59 EUR. With the line lightly loaded in hour 1
    all of it comes back there (50 EUR)."""
    points, bids, devices = ev_case(9.8)
    result, awarded, _, _ = clear(points, bids, "CM_P", devices=devices, engine=engine)
    assert awarded.to_dict() == pytest.approx({"defer": 1.0, "back1": 0.4, "back2": 0.6},
                                              abs=1e-6)
    assert result.solution.objective == pytest.approx(59.0)
    assert_accounts_kept(awards_of(bids, awarded, points), devices.energy)
    points, bids, devices = ev_case(6.0)
    _, awarded, _, _ = clear(points, bids, "CM_P", devices=devices, engine=engine)
    assert awarded.to_dict() == pytest.approx({"defer": 1.0, "back1": 1.0, "back2": 0.0},
                                              abs=1e-6)


def test_recovery_cannot_run_ahead_of_deferral():
    """Extra charging before any deferral would be charging the fleet does not need: with
    the need in hour 2 (last) and recovery bids only earlier, nothing can be deferred and
    the DSO curtails instead."""
    points = [toy_point(t, line_mva=10.5 if t == 2 else 5.0, dline_dp=(-0.5, 0.0))
              for t in range(3)]
    bids = bids_frame([("back0", 1, 0, "P_down", 2.0, 1.0, "ev"),
                       ("defer", 1, 2, "P_up", 2.0, 40.0, "ev")])
    devices = Devices(energy=shift_account("ev", np.arange(3)))
    result, awarded, _, _ = clear(points, bids, "CM_P", devices=devices,
                                  emergency=emergency_at({}, {1: 5.0}, periods=3))
    assert awarded.sum() == pytest.approx(0.0, abs=1e-9)
    assert result.emergency_mwh == pytest.approx(1.0)


def test_energy_kpis_count_shifted_energy_and_battery_cycles():
    """1 MWh deferred and recovered; a 2 MWh battery charged 1 and discharged 1 MWh:
    (1 + 1) / (2 x 2) = 0.5 equivalent full cycles."""
    table = pd.concat([shift_account("ev", np.arange(2)),
                       storage_account("bat", np.arange(2), 2.0, 1.0, 1.0, 1.0)])
    awards = bids_frame([("a", 1, 0, "P_up", 1.0, 1.0, "ev"), ("b", 1, 1, "P_down", 1.0, 1.0,
                                                                 "ev"),
                         ("c", 1, 0, "P_down", 1.0, 1.0, "bat"),
                         ("d", 1, 1, "P_up", 1.0, 1.0, "bat")]).assign(
        awarded=1.0, hours=1.0, soc_mwh=[np.nan, np.nan, 2.0, 1.0],
        deferred_mwh=[1.0, 0.0, np.nan, np.nan])
    assert energy_kpis(table, awards) == pytest.approx(
        {"energy_shifted": 1.0, "rebound_energy": 1.0, "storage_cycles": 0.5})


@pytest.mark.parametrize(("change", "field"), [
    ({"kind": "battery"}, "kind"), ({"lower_mwh": 0.5}, "lower_mwh"),
    ({"charge_efficiency": 0.0}, "charge_efficiency"), ({"order": -1}, "order"),
    ({"upper_mwh": np.nan}, "upper_mwh")])
def test_bad_energy_tables_name_the_field(change, field):
    table = storage_account("bat", np.arange(3), 2.0, 1.0, 1.0, 0.81)
    table.loc[1, list(change)] = list(change.values())
    with pytest.raises(InputError) as err:
        validate_accounts(table, source="energy.csv")
    assert err.value.field == field and "energy.csv" in str(err.value)


def test_a_device_whose_rows_disagree_is_an_error():
    table = storage_account("bat", np.arange(3), 2.0, 1.0, 1.0, 0.81)
    table.loc[2, "capacity_mwh"] = 3.0
    with pytest.raises(InputError, match="same in every row") as err:
        validate_accounts(table)
    assert err.value.field == "capacity_mwh"


def test_interleaved_accounts_clear_like_sorted_ones():
    """The EV case with a battery's rows mixed into the EV's, in reverse order: the
    devices put each account back in window order, so the awards do not change."""
    points, bids, devices = ev_case(9.8)
    battery = storage_account("bat", np.arange(3), 1.0, 0.5, 0.5, 1.0)
    mixed = pd.concat([devices.energy, battery]).iloc[[5, 0, 4, 1, 3, 2]]
    _, awarded, _, _ = clear(points, bids, "CM_P", devices=Devices(energy=mixed))
    assert awarded.to_dict() == pytest.approx({"defer": 1.0, "back1": 0.4, "back2": 0.6},
                                              abs=1e-6)


def test_a_p_bid_outside_its_devices_window_is_an_error():
    bids = bids_frame([("x", 1, 5, "P_up", 1.0, 10.0, "ev")])
    with pytest.raises(InputError, match="outside its energy account"):
        validate_accounts(shift_account("ev", np.arange(3)), bids)


@pytest.mark.slow
@pytest.mark.parametrize("design", ["CMVC_P", "CM_P>VC_Q"])
def test_shipped_semiurb_population_never_breaks_an_energy_account(design):
    """Learning rounds on simbench-semiurb (batteries, EV fleets, shiftable loads): no
    battery goes below empty, above full or ends short of its final state, and every EV
    fleet and shiftable load recovers all it deferred, recomputed from the awards; the
    recorded state of charge stays within [0, E]."""
    population = load_population("agents/simbench_semiurb.toml")
    model = LFMModel(ModelSettings("simbench-semiurb", population, design,
                                   ac_every=10**6), seed=0)
    for _ in range(8):
        model.step()
    accounts = model.day(model.days[0]).book.devices.energy
    assert set(accounts.kind) == {"storage", "shift"}
    records = model.records()
    awards = records["awards"]
    assert awards.device_id.isin(set(accounts.device_id)).any()
    for _, won in awards.groupby("round"):
        assert_accounts_kept(won, accounts)
    battery = awards[awards.soc_mwh.notna()]
    capacity = battery.device_id.map(accounts.groupby("device_id").capacity_mwh.first())
    assert ((battery.soc_mwh >= -1e-6) & (battery.soc_mwh <= capacity + 1e-6)).all()
    rounds = records["rounds"]
    assert (rounds.storage_cycles > 0).any()
    np.testing.assert_allclose(rounds.energy_shifted, rounds.rebound_energy, atol=1e-6)
