"""Population files, the generator and asset physics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lfm_abm.agents.assets import MIN_CAPACITY, AssetSpec, asset_offers, in_window
from lfm_abm.agents.generator import GeneratorSettings, generate_population, population_to_toml
from lfm_abm.agents.inventory import grid_inventory
from lfm_abm.agents.population import (
    check_against,
    load_population,
    population_from_dict,
)
from lfm_abm.errors import InputError

PV = {"id": "pv_11", "type": "pv_inverter", "bus": 11, "cost": {"P_down": 60.0, "Q_up": 3.0}}


@pytest.fixture(scope="module")
def inventory(cigre_case):
    return grid_inventory(cigre_case)


@pytest.mark.parametrize(("path", "n"), [("agents/cigre_mv.toml", 13),
                                         ("agents/simbench_semiurb.toml", 70)])
def test_shipped_populations_load(path, n):
    population = load_population(path)
    types = {fsp.type for fsp in population.fsps}
    assert len(population) == n and types == {"pv_inverter", "ev_fleet", "der_aggregator"}


def test_cigre_population_fits_the_grid(cigre_case, inventory):
    check_against(load_population("agents/cigre_mv.toml"), inventory, list(cigre_case.buses))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "wind_farm"}, "fsp pv_11: type"),
        ({"share": 1.5}, "fsp pv_11: share"),
        ({"cost": {"P_down": -1.0}}, "fsp pv_11: cost.P_down"),
        ({"cost": {"P_up": 5.0}}, "fsp pv_11: cost.P_up"),
        ({"cost": {"P_sideways": 5.0}}, "fsp pv_11: cost.P_sideways"),
        ({"colour": "red"}, "fsp pv_11: colour"),
        ({"bus": "eleven"}, "fsp pv_11: bus"),
        ({"learner": "ucb1"}, "fsp pv_11: learner"),
    ],
)
def test_broken_fsp_fields_are_named(change, field):
    with pytest.raises(InputError) as err:
        population_from_dict({"fsp": [PV | change]}, "pop.toml")
    assert err.value.source == "pop.toml" and err.value.field == field


EV = {"id": "ev_5", "type": "ev_fleet", "bus": 5, "charger_mw": 1.0, "cost": {"P_up": 90.0}}
STORAGE = {"kind": "storage", "bus": 9, "power_mw": 0.5, "energy_mwh": 1.0}


def aggregator(asset: dict) -> dict:
    return {"id": "agg", "type": "der_aggregator", "cost": {"P_up": 50.0},
            "assets": [{"kind": "generator", "bus": 7}, asset]}


@pytest.mark.parametrize(("fsp", "field", "allowed"), [
    (PV | {"bus": 11.5}, "fsp pv_11: bus", "an integer"),
    (PV | {"oversize": True}, "fsp pv_11: oversize", "a number in [1, 10000]"),
    (PV | {"oversize": math.nan}, "fsp pv_11: oversize", "a number in [1, 10000]"),
    (PV | {"oversize": math.inf}, "fsp pv_11: oversize", "a number in [1, 10000]"),
    (PV | {"oversize": 0.5}, "fsp pv_11: oversize", "a number in [1, 10000]"),
    (PV | {"q_at_night": 1}, "fsp pv_11: q_at_night", "true or false"),
    (PV | {"cost": {"P_down": math.nan}}, "fsp pv_11: cost.P_down", "a number > 0, or none"),
    (EV | {"window": [17, 7.5]}, "fsp ev_5: window[1]", "a list of 2 integers in [0, 23]"),
    (EV | {"window": [17, 24]}, "fsp ev_5: window[1]", "a list of 2 integers in [0, 23]"),
    (EV | {"window": [17]}, "fsp ev_5: window", "a list of 2 integers in [0, 23]"),
    (EV | {"v2g_share": 1.5}, "fsp ev_5: v2g_share", "a number in [0, 1]"),
    (aggregator(STORAGE | {"energy_mwh": -1.0}), "fsp agg: assets[1]: energy_mwh",
     "a number in [0, 10000]"),
    (aggregator(STORAGE | {"efficiency": 0.3}), "fsp agg: assets[1]: efficiency",
     "a number in [0.5, 1]"),
    (aggregator(STORAGE | {"soc_initial": 0.4, "soc_final": 0.6}),
     "fsp agg: assets[1]: soc_final", "a number in [0, 0.4], or none"),
    (aggregator({"kind": "flexible_load", "bus": 9, "shift": "yes"}),
     "fsp agg: assets[1]: shift", "true or false"),
])
def test_bad_asset_values_are_one_line_naming_fsp_field_and_range(fsp, field, allowed):
    with pytest.raises(InputError) as err:
        population_from_dict({"fsp": [fsp]}, "pop.toml")
    text = str(err.value)
    assert len(text.splitlines()) == 1
    assert text.startswith(f"pop.toml: {field}: ") and text.endswith(f"(allowed: {allowed})")


def test_a_bad_value_in_a_population_file_names_file_fsp_and_field(tmp_path):
    path = tmp_path / "pop.toml"
    path.write_text('[[fsp]]\nid = "agg"\ntype = "der_aggregator"\ncost = { P_up = 50.0 }\n'
                    'assets = [{ kind = "storage", bus = 9, power_mw = 0.5, energy_mwh = 1.0,'
                    ' efficiency = 1.5 }]\n')
    with pytest.raises(InputError) as err:
        load_population(path)
    assert str(err.value) == (f"{path}: fsp agg: assets[0]: efficiency: invalid value 1.5 "
                              "(allowed: a number in [0.5, 1])")


def test_specs_built_in_code_are_checked_and_completed():
    with pytest.raises(InputError, match=r"oversize: invalid value 0.2"):
        AssetSpec("pv", 11, {"P_down": 60.0}, params={"oversize": 0.2})
    battery = AssetSpec("storage", 9, {"P_up": 50}, params={"power_mw": 1, "energy_mwh": 2})
    assert battery.cost == {"P_up": 50.0}
    assert battery.params == {"power_mw": 1.0, "energy_mwh": 2.0, "soc_initial": 0.5,
                              "soc_final": None, "efficiency": 0.9}


@pytest.mark.parametrize(("change", "message"), [
    ({"ev_fleets": 1.5}, "population.ev_fleets: invalid value 1.5 (allowed: an integer >= 0)"),
    ({"pv_density": True},
     "population.pv_density: invalid value True (allowed: a number in [0, 1])"),
    ({"need_bias": math.inf}, "population.need_bias: invalid value inf (allowed: a number >= 0)"),
    ({"storage_hours": (2.0, 1.0)}, "population.storage_hours: invalid value [2.0, 1.0]: low "
                                    "above high (allowed: a list of 2 numbers > 0, low <= high)"),
])
def test_generator_settings_are_checked(change, message):
    with pytest.raises(InputError) as err:
        GeneratorSettings(**change)
    assert str(err.value) == message


def test_structural_errors():
    with pytest.raises(InputError, match="no FSPs"):
        population_from_dict({"fsp": []}, "pop.toml")
    with pytest.raises(InputError, match="twice"):
        population_from_dict({"fsp": [PV, PV]}, "pop.toml")
    with pytest.raises(InputError, match="required"):
        population_from_dict({"fsp": [{"id": "e", "type": "ev_fleet", "bus": 5,
                                        "cost": {"P_up": 9.0}}]}, "pop.toml")
    with pytest.raises(InputError) as err:
        population_from_dict({"fsp": [{"id": "a", "type": "der_aggregator", "assets": [
            {"kind": "nuclear", "bus": 3}]}]}, "pop.toml")
    assert err.value.field == "fsp a: assets[0]: kind"


def test_bad_toml_file_is_named(tmp_path):
    path = tmp_path / "pop.toml"
    path.write_text("[[fsp]\nid=")
    with pytest.raises(InputError) as err:
        load_population(path)
    assert str(path) in str(err.value)


def test_assets_must_exist_in_the_grid(cigre_case, inventory):
    no_pv = population_from_dict({"fsp": [PV | {"bus": 13}]}, "pop.toml")
    with pytest.raises(InputError) as err:
        check_against(no_pv, inventory, list(cigre_case.buses))
    assert "no pv at bus 13" in str(err.value) and err.value.field == "fsp pv_11: bus"
    slack = population_from_dict({"fsp": [PV | {"bus": 0}]}, "pop.toml")
    with pytest.raises(InputError, match="not a bus where"):
        check_against(slack, inventory, list(cigre_case.buses))


def test_shares_of_one_bus_cannot_exceed_the_whole(cigre_case, inventory):
    twice = population_from_dict({"fsp": [PV | {"share": 0.6},
                                          PV | {"id": "pv_11b", "share": 0.5}]}, "pop.toml")
    with pytest.raises(InputError) as err:
        check_against(twice, inventory, list(cigre_case.buses))
    assert "1.100 of the pv at bus 11" in str(err.value)
    assert err.value.field == "fsp pv_11b: share"


def test_wind_cannot_be_raised(inventory):
    """The CIGRE wind farm at bus 7 can be curtailed but not pushed above its output."""
    asset = AssetSpec("generator", 7, {"P_up": 90.0, "P_down": 45.0})
    hours = np.arange(24)
    offers, _, _ = asset_offers(asset, inventory, hours, hours, "wind/0")
    assert set(offers["product"]) == {"P_down"}


def test_pv_offers_follow_the_sun(inventory):
    asset = AssetSpec("pv", 11, {"P_down": 60.0, "Q_up": 3.0}, share=0.5,
                      params={"oversize": 1.2, "q_at_night": False})
    hours = np.arange(24)
    offers, devices, _ = asset_offers(asset, inventory, hours, hours, "pv/0")
    curtail = offers[offers["product"] == "P_down"].set_index("period").capacity
    np.testing.assert_allclose(curtail, 0.5 * inventory.at("pv", 11)[curtail.index])
    q_periods = set(offers.loc[offers["product"] == "Q_up", "period"])
    assert q_periods == set(curtail.index) and 2 not in q_periods  # no Q at night
    assert (devices.s_mva >= devices.p_mw - 1e-12).all()
    sunny = devices[devices.p_mw > MIN_CAPACITY]
    np.testing.assert_allclose(sunny.s_mva, 1.2 * 0.5 * inventory.rated("pv", 11))


def test_ev_fleet_defers_and_recovers_only_while_plugged_in(inventory):
    """Offers in every plugged-in hour, not only the published one (recovery needs them);
    the account runs from 17 h past midnight to 7 h and closes at zero."""
    asset = AssetSpec("ev", 5, {"P_up": 90.0, "P_down": 30.0}, params={
        "charger_mw": 0.5, "window": (17, 7), "v2g_share": 0.0})
    hours = np.arange(24)
    offers, _, account = asset_offers(asset, inventory, hours, np.array([19]), "ev/0")
    plugged = hours[in_window(hours, (17, 7))]
    assert set(offers.loc[offers["product"] == "P_down", "period"]) == set(plugged)
    shed = offers[offers["product"] == "P_up"].set_index("period").capacity
    assert set(shed.index) <= set(plugged)
    np.testing.assert_allclose(shed, inventory.at("ev", 5)[shed.index])
    assert list(account.period) == [*range(17, 24), *range(0, 8)]
    assert (account.kind == "shift").all() and (account.upper_mwh == 0).all()
    assert account.lower_mwh.iloc[-1] == 0 and np.isinf(account.lower_mwh.iloc[:-1]).all()
    assert (offers.device_id == "ev/0").all()


def test_battery_account_keeps_its_state_of_charge_in_range(inventory):
    asset = AssetSpec("storage", 5, {"P_up": 50.0, "P_down": 50.0}, params={
        "power_mw": 1.0, "energy_mwh": 2.0, "soc_initial": 0.75, "soc_final": 0.5,
        "efficiency": 0.81})
    hours = np.arange(24)
    offers, _, account = asset_offers(asset, inventory, hours, np.array([12]), "st/0")
    assert set(offers.period) == set(hours)  # P in every period of the day
    assert list(account.period) == list(hours)
    np.testing.assert_allclose(account.lower_mwh.iloc[:-1], -1.5)
    assert account.lower_mwh.iloc[-1] == pytest.approx(-0.5)
    np.testing.assert_allclose(account.upper_mwh, 0.5)
    np.testing.assert_allclose(account[["charge_efficiency", "discharge_efficiency"]], 0.9)


def test_window_wraps_midnight():
    hours = np.arange(24)
    assert list(hours[in_window(hours, (22, 2))]) == [0, 1, 2, 22, 23]
    assert list(hours[in_window(hours, (9, 11))]) == [9, 10, 11]


def test_generator_is_reproducible_and_round_trips(cigre_case, inventory):
    settings = GeneratorSettings(pv_density=0.75, ev_fleets=2, aggregators=1)
    first = generate_population(cigre_case, inventory, settings, seed=3)
    again = generate_population(cigre_case, inventory, settings, seed=3)
    assert first == again
    text = population_to_toml(first, header="test")
    import tomllib

    reread = population_from_dict(tomllib.loads(text), first.source)
    assert reread.fsps == first.fsps
    check_against(reread, inventory, list(cigre_case.buses))
    types = [fsp.type for fsp in first.fsps]
    assert types.count("pv_inverter") == 6 and types.count("ev_fleet") == 2


def test_need_bias_crowds_fsps_where_the_needs_are(cigre_case, inventory):
    """With a strong bias, PV owners land on feeder 1 (where the needs are) more often."""
    feeder_one = {3, 4, 5, 6, 8, 9, 10, 11}
    def share_on_feeder(bias):
        hits = []
        for seed in range(20):
            population = generate_population(cigre_case, inventory, GeneratorSettings(
                pv_density=0.25, ev_fleets=3, aggregators=0, need_bias=bias), seed)
            ev = [f.assets[0].bus for f in population.fsps if f.type == "ev_fleet"]
            hits += [bus in feeder_one for bus in ev]
        return np.mean(hits)
    assert share_on_feeder(20.0) > share_on_feeder(0.0)


def test_a_large_generated_population_never_claims_more_than_a_bus_has(cigre_case, inventory):
    """Many aggregators on a 15-bus grid meet at the same loads: their shares of one bus's
    load must still add up to at most all of it (the scale benchmark's populations)."""
    settings = GeneratorSettings(pv_density=1.0, pv_per_bus=40, ev_fleets=40, aggregators=25)
    population = generate_population(cigre_case, inventory, settings, seed=0)
    shares: dict[int, float] = {}
    for fsp in population.fsps:
        for asset in fsp.assets:
            if asset.kind == "flexible_load":
                shares[asset.bus] = shares.get(asset.bus, 0.0) + asset.share
    assert max(shares.values()) <= 1.0 + 1e-9 and max(shares.values()) > 0.5
    check_against(population, inventory, list(cigre_case.buses))
