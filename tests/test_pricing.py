"""Pricing rules on cases solved by hand: locational prices, the cap, make-whole uplift."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ample_bids
from test_market_golden import ENGINES, clear, price_at
from toy import bids_frame, emergency_at, toy_point

from lfm_abm.agents.population import load_population
from lfm_abm.errors import InputError
from lfm_abm.market.clearing import ClearingResult, Market
from lfm_abm.market.devices import Devices
from lfm_abm.market.energy import storage_account
from lfm_abm.market.params import MarketParams
from lfm_abm.market.pricing import PRICING_RULES, check_pricing, make_whole
from lfm_abm.model import LFMModel, ModelSettings


def two_bus_case():
    """Line at 11 MVA, limit 10: 1 MVA of relief needed. Curtailing 1 MW at bus 1
    relieves 0.5 MVA, at bus 2 0.25 MVA. Per MVA of relief, A costs 40 / 0.5 = 80,
    D 100, B 30 / 0.25 = 120, C 130 EUR. A and D give 0.4 MVA, B the other 0.6 MVA
    (2.4 MW) and sets the line's dual at 120 EUR/MVA: the LMP of P_down is
    0.5 x 120 = 60 EUR/MWh at bus 1 and 30 at bus 2; C (65 > 60) is rejected.
    Pay-as-bid costs 20 + 15 + 72 = 107 EUR; locational pays 30 + 18 + 72 = 120.
    """
    points = [toy_point(line_mva=11.0, dline_dp=(0.5, 0.25))]
    bids = bids_frame([("A", 1, 0, "P_down", 0.5, 40.0), ("D", 1, 0, "P_down", 0.3, 50.0),
                       ("B", 2, 0, "P_down", 10.0, 30.0), ("C", 1, 0, "P_down", 1.0, 65.0)])
    return points, bids, emergency_at({1: 5.0, 2: 20.0})


@pytest.mark.parametrize("engine", ENGINES)
def test_two_bus_locational_prices_solved_by_hand(engine):
    points, bids, emergency = two_bus_case()
    result, awarded, paid, prices = clear(points, bids, "CM_P", "locational", engine=engine,
                                          emergency=emergency)
    assert awarded.to_dict() == pytest.approx({"A": 0.5, "D": 0.3, "B": 2.4, "C": 0.0},
                                              abs=1e-7)
    assert result.solution.objective == pytest.approx(107.0)
    assert price_at(prices, 1, "P_down") == pytest.approx(60.0)
    assert price_at(prices, 2, "P_down") == pytest.approx(30.0)
    assert price_at(prices, 1, "P_up") == pytest.approx(-60.0)
    assert paid.to_dict() == pytest.approx({"A": 30.0, "D": 18.0, "B": 72.0, "C": 0.0})
    assert result.settled.uplift.sum() == pytest.approx(0.0, abs=1e-9)
    _, _, as_bid, _ = clear(points, bids, "CM_P", "pay-as-bid", engine=engine,
                            emergency=emergency)
    assert as_bid.sum() == pytest.approx(107.0)


def test_the_price_is_capped_at_the_reservation_price():
    """Reservation price 50: A and D (at or below it) are paid 50, not the LMP of 60;
    C (65) is not admitted. Every accepted bid still gets at least its offer."""
    points, bids, emergency = two_bus_case()
    _, awarded, paid, _ = clear(points, bids, "CM_P", "locational", emergency=emergency,
                                params=MarketParams(reservation_price=50.0))
    assert paid.to_dict() == pytest.approx({"A": 25.0, "D": 15.0, "B": 72.0, "C": 0.0})
    offer = bids.set_index("bid_id").price * awarded
    assert (paid >= offer - 1e-9).all()


def battery_case():
    """One bus, two hours; a battery (2 MWh, 1 MWh stored, lossless, must end with 1 MWh)
    discharges at 10 EUR/MWh and recharges at 20. In hour 0, 1 MW of P_up is needed at
    bus 1 (line 10.5 MVA, limit 10, 0.5 MVA per MW); a load would shed at 100.
    The battery gives 1 MW and recharges 1 MWh in hour 1 for 30 EUR in all: it is the
    marginal supplier, so the LMP of P_up in hour 0 is 30 EUR/MWh; nothing binds in hour
    1, so its recharge is priced at 0 and paid nothing. The device is paid its cost."""
    points = [toy_point(t, line_mva=10.5 if t == 0 else 5.0, dline_dp=(-0.5, 0.0))
              for t in range(2)]
    bids = bids_frame([("dis", 1, 0, "P_up", 2.0, 10.0, "bat"),
                       ("ch", 1, 1, "P_down", 2.0, 20.0, "bat"),
                       ("load", 1, 0, "P_up", 1.0, 100.0)])
    devices = Devices(energy=storage_account("bat", np.arange(2), 2.0, 1.0, 1.0, 1.0))
    return points, bids, devices, emergency_at({}, {1: 5.0}, periods=2)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_battery_is_paid_the_lmp_of_each_hour_and_is_whole_as_a_device(engine):
    points, bids, devices, emergency = battery_case()
    result, awarded, paid, prices = clear(points, bids, "CM_P", "locational", devices=devices,
                                          engine=engine, emergency=emergency)
    assert awarded.to_dict() == pytest.approx({"dis": 1.0, "ch": 1.0, "load": 0.0}, abs=1e-7)
    assert price_at(prices, 1, "P_up", period=0) == pytest.approx(30.0)
    assert price_at(prices, 1, "P_down", period=1) == pytest.approx(0.0, abs=1e-9)
    assert paid.to_dict() == pytest.approx({"dis": 30.0, "ch": 0.0, "load": 0.0}, abs=1e-7)
    assert result.settled.uplift.sum() == pytest.approx(0.0, abs=1e-7)


def test_a_capped_device_short_of_its_cost_gets_a_make_whole_uplift():
    """Reservation price 25: the discharge is paid 25 instead of 30, and the device,
    whose two bids cost 30, gets the 5 EUR it lacks on its short bid, the recharge."""
    points, bids, devices, emergency = battery_case()
    result, _, paid, _ = clear(points, bids, "CM_P", "locational", devices=devices,
                               emergency=emergency,
                               params=MarketParams(reservation_price=25.0))
    assert paid.to_dict() == pytest.approx({"dis": 25.0, "ch": 5.0, "load": 0.0}, abs=1e-7)
    assert result.settled.uplift.sum() == pytest.approx(5.0)


def test_make_whole_nets_a_devices_bids_and_pays_only_its_short_ones():
    shortfall = np.array([-15.0, 20.0, 4.0, -1.0, 3.0])
    device = np.array([0, 0, 1, 1, 2])
    # device 0: net 5 -> all to bid 1; device 1: net 3 -> to bid 2; device 2: 3 to bid 4
    np.testing.assert_allclose(make_whole(shortfall, device), [0.0, 5.0, 3.0, 0.0, 3.0])
    np.testing.assert_allclose(make_whole(np.array([-1.0, -2.0]), np.array([0, 0])), 0.0)


def test_an_unknown_pricing_rule_is_an_error_naming_the_known_ones():
    with pytest.raises(InputError) as error:
        check_pricing("marginal", "study.toml")
    assert "study.toml" in str(error.value)
    assert all(rule in str(error.value) for rule in PRICING_RULES)


def assert_uniform_prices(result: ClearingResult) -> None:
    """In every stage, the bids awarded at one bus, period and product without uplift
    are paid one price; every device (or lone bid) is paid at least its offers."""
    for stage, (_, cleared) in enumerate(result.stages):
        bids = result.awards.iloc[cleared.lp.bid_index]
        won = cleared.settled.assign(bus=bids.bus.to_numpy(), period=bids.period.to_numpy(),
                                     product=bids["product"].to_numpy())
        won = won[(won.awarded > 1e-9) & (won.uplift.abs() < 1e-9)]
        spread = won.groupby(["bus", "period", "product"]).price_paid.agg(np.ptp)
        assert (spread <= 1e-6 * (1 + won.price_paid.abs().max())).all(), stage
    awards = result.awards
    cost = awards.price * awards.awarded * awards.hours
    device = awards.device_id.where(awards.device_id != "", awards.bid_id)
    assert ((awards.payment - cost).groupby(device).sum() >= -1e-6).all()


def test_cigre_locational_prices_are_uniform(cigre_case):
    result = Market(cigre_case, "CMVC_PQ", "locational").clear(ample_bids(cigre_case))
    assert (result.awards.awarded > 0).sum() > 5
    assert_uniform_prices(result)


@pytest.mark.slow
@pytest.mark.parametrize("design", ["CMVC_PQ", "CM_P>VC_Q"])
def test_semiurb_locational_prices_are_uniform(design):
    """The shipped semiurb population's truthful offers, with capability circles and
    energy accounts: one price per bus, period and product in every stage."""
    model = LFMModel(ModelSettings("simbench-semiurb", load_population(
        "agents/simbench_semiurb.toml"), design, pricing="locational"), seed=0)
    day = model.day(model.days[0])
    result = Market(day.case, design, "locational").clear(day.book.truthful_bids(),
                                                          day.book.devices, ac_validate=False)
    assert (result.awards.awarded > 0).sum() > 20
    assert_uniform_prices(result)
