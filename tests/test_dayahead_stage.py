"""The day-ahead stage of a run: positions, the offers that start from them, settlement.

Unit cases are solved by hand (docs/model.md 8.8); the model cases check that a stage
whose providers stay put changes nothing, and that learners find inc-dec gaming on
cigre-mv at midday where the day-ahead baseline pays for it and drop it where the
forecast baseline settles it as imbalance, while a reward-blind learner does not.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from controls import RewardBlind

from lfm_abm.agents.assets import AssetSpec, asset_offers
from lfm_abm.agents.book import build_book
from lfm_abm.agents.inventory import GridInventory
from lfm_abm.agents.population import population_from_dict
from lfm_abm.agents.positions import PositionAsset, PositionBook, clip_to_charge
from lfm_abm.dayahead_stage import DayAheadStage
from lfm_abm.errors import InputError
from lfm_abm.learning import ActionGrid, make_learner
from lfm_abm.market.dayahead import DEFAULT_PRICE, DayAheadParams
from lfm_abm.model import LFMModel, ModelSettings
from lfm_abm.network.grids import default_scenario, load_grid
from lfm_abm.network.scenarios import Scenario


def test_a_battery_schedule_keeps_its_charge_and_final_level():
    # E = 2 MWh, starts at 1, must end at 1; one-way efficiency 0.9. Charging 1 MW for
    # an hour stores 0.9 (1.9); two discharges of a MW would take 2.22. Only a x with
    # 2 x / 0.9 <= 0.9 keeps the end at 1: x = 0.405 in both.
    out = clip_to_charge(np.array([-1.0, 1.0, 1.0, 0.0]), np.arange(4), 1.0,
                         (2.0, 1.0, 1.0, 0.81))
    np.testing.assert_allclose(out, [-1.0, 0.405, 0.405, 0.0], atol=1e-9)
    # Within the bounds, nothing is cut; a full battery cannot charge.
    np.testing.assert_allclose(clip_to_charge(np.array([0.5, -0.5]), np.arange(2), 1.0,
                                              (2.0, 1.0, 0.0, 0.81)), [0.5, -0.5])
    np.testing.assert_allclose(clip_to_charge(np.array([-1.0]), np.arange(1), 1.0,
                                              (2.0, 2.0, 0.0, 0.81)), [0.0])


def _generator_book(cost_up: float, cost_down: float = 45.0, **params) -> PositionBook:
    hours = np.arange(24)
    asset = PositionAsset("g", "g/0", 1, np.ones(24), np.ones(24), -cost_up, -cost_down)
    return PositionBook((asset,), DayAheadParams(enabled=True, **params), hours, 1.0)


def test_truthful_positions_sell_where_the_price_beats_the_cost():
    # A generator raising output at 40 EUR/MWh under the default prices: block 0
    # (hours 0-5, 32-36) loses, blocks 1-3 earn (6-11: all above 40; 12-17: +16 in
    # sum; 18-23: +46); producing less costs 45 and the price: never.
    book = _generator_book(40.0)
    np.testing.assert_array_equal(book.truthful_shares("g"), [0.0, 1.0, 1.0, 1.0])
    assert _generator_book(100.0).truthful_shares("g").tolist() == [0.0] * 4
    # The schedule: each block's share of the capacity in its hours.
    mw = book.schedule({"g": np.array([0.0, 0.5, -1.0, 1.0])})["g/0"]
    np.testing.assert_array_equal(mw, np.repeat([0.0, 0.5, -1.0, 1.0], 6))
    profit = book.profit({"g/0": mw})["g"]
    assert profit[6] == pytest.approx(0.5 * (DEFAULT_PRICE[6] - 40.0))
    assert profit[12] == pytest.approx(-(DEFAULT_PRICE[12] + 45.0))


def test_a_capacity_limitation_holds_positions_and_pays_the_lost_profit():
    # The 40-EUR generator earns 46 EUR in hours 18-23 (truthful share 1). Held there,
    # its best is to stay out of that block: the limitation costs it (and pays) 46.
    book = _generator_book(40.0)
    held = np.arange(24) >= 18
    mw = book.schedule({"g": np.ones(4)}, held)["g/0"]
    assert (mw[held] == 0).all() and (mw[~held] == 1).all()
    assert book.truthful_profit("g") - book.truthful_profit("g", held) == pytest.approx(46.0)
    np.testing.assert_array_equal(book.truthful_shares("g", held), [0.0, 1.0, 1.0, 0.0])


def test_the_loss_bound_is_what_the_worst_positions_lose():
    book = _generator_book(40.0, block_hours=24)
    # Selling loses where the price is below 40, buying loses price + 45 everywhere.
    price = np.asarray(DEFAULT_PRICE)
    expected = np.maximum(40.0 - price, 0).sum() + (price + 45.0).sum()
    assert book.loss_bound("g", np.arange(24), settles=False) == pytest.approx(expected)
    assert book.loss_bound("g", np.arange(24), settles=True) == pytest.approx(
        expected + 2 * (price + 10.0).sum())


def test_dayahead_settings_are_checked():
    with pytest.raises(InputError, match=r"dayahead\.positions"):
        DayAheadParams(positions=(0.5, 1.0))
    with pytest.raises(InputError, match=r"dayahead\.baseline"):
        DayAheadParams(baseline="declared")
    with pytest.raises(InputError, match=r"dayahead\.price"):
        DayAheadParams(price=(40.0,) * 23)
    with pytest.raises(InputError, match=r"dayahead\.block_hours"):
        DayAheadParams(block_hours=5)
    with pytest.raises(InputError, match=r"dayahead\.kinds"):
        DayAheadParams(kinds=("ev",))


def _inventory(load_mw: float, periods: int = 2) -> GridInventory:
    frame = pd.DataFrame({1: np.full(periods, load_mw)})
    empty = pd.DataFrame(index=range(periods))
    return GridInventory({"load": frame, "pv": empty, "ev": empty, "generator": empty,
                          "dispatchable": empty},
                         {"pv": pd.Series(dtype=float), "generator": pd.Series(dtype=float),
                          "dispatchable": pd.Series(dtype=float)})


def _offers(asset: AssetSpec, position: np.ndarray, load_mw: float = 2.0) -> pd.DataFrame:
    offers, _, account = asset_offers(asset, _inventory(load_mw), np.array([12, 13]),
                                      np.array([0, 1]), "a/0", position)
    return offers.set_index(["period", "product", "reverses"]), account


def test_offers_start_from_the_schedule_and_may_undo_it_first():
    # A flexible load of 2 MW that may add 0.4: it sold 0.5 in period 0 (consumes 1.5)
    # and bought 0.3 in period 1 (consumes 2.3).
    load = AssetSpec(kind="flexible_load", bus=1, cost={"P_up": 100.0, "P_down": 40.0},
                     params={"increase": 0.2})
    offers, _ = _offers(load, np.array([0.5, -0.3]))
    capacity, cost = offers.capacity, offers.cost
    assert capacity[(0, "P_up", False)] == pytest.approx(1.5)  # sheds what it still uses
    assert capacity[(0, "P_down", False)] == pytest.approx(0.4)
    assert capacity[(0, "P_down", True)] == pytest.approx(0.5)  # consumes again
    assert cost[(0, "P_down", True)] == -100.0  # and gets back what shedding cost it
    assert capacity[(1, "P_up", False)] == pytest.approx(2.0)
    assert capacity[(1, "P_up", True)] == pytest.approx(0.3)
    assert cost[(1, "P_up", True)] == -40.0
    assert capacity[(1, "P_down", False)] == pytest.approx(0.1)
    # No position: the offers are those without a day-ahead stage.
    plain, _ = _offers(load, np.zeros(2))
    assert not plain.index.get_level_values("reverses").any()
    assert plain.capacity[(0, "P_up", False)] == 2.0


def test_a_battery_account_starts_from_its_scheduled_charge():
    battery = AssetSpec(kind="storage", bus=1, cost={"P_up": 50.0, "P_down": 50.0},
                        params={"power_mw": 1.0, "energy_mwh": 2.0, "soc_initial": 0.5,
                                "efficiency": 0.81})
    _, plain = _offers(battery, np.zeros(2))
    _, moved = _offers(battery, np.array([0.9, -0.5]))
    # Discharging 0.9 MW takes 1 MWh: the charge is 0 after period 0, 0.45 after 1.
    np.testing.assert_allclose(moved.upper_mwh - plain.upper_mwh, [1.0, 0.55])
    np.testing.assert_allclose(moved.lower_mwh - plain.lower_mwh, [1.0, 0.55])


def _settlement(baseline: str):
    """A load that sold 0.5 MW in period 0 (hour 12, price 39) and got 0.7 MW of P_down.

    The LP took 0.4 from its reversal offer (paid 0) and 0.3 from its normal offer (paid
    30, i.e. 100 EUR/MWh): 0.5 undo its position, 0.2 go beyond it.
    """
    population = population_from_dict({"fsp": [{
        "id": "a", "type": "der_aggregator", "cost": {"P_up": 100.0, "P_down": 40.0},
        "assets": [{"kind": "flexible_load", "bus": 1, "increase": 0.5}]}]})
    schedule = {"a/0": np.array([0.5, 0.0])}
    book = build_book(population.fsps, _inventory(2.0), np.array([12, 13]), np.array([0]),
                      1.0, positions=schedule)
    rows = book.offers.set_index(["period", "product", "reverses"]).index
    awarded = np.zeros(len(rows))
    payment = np.zeros(len(rows))
    awarded[rows.get_loc((0, "P_down", True))] = 0.4
    awarded[rows.get_loc((0, "P_down", False))] = 0.3
    payment[rows.get_loc((0, "P_down", False))] = 30.0
    params = DayAheadParams(enabled=True, baseline=baseline, block_hours=24)
    asset = PositionAsset("a", "a/0", 1, np.full(2, 2.0), np.full(2, 1.0), -100.0, -40.0)
    stage = DayAheadStage(PositionBook((asset,), params, np.array([12, 13]), 1.0), population)
    result = stage.settle(book, pd.DataFrame({"awarded": awarded, "payment": payment}),
                          schedule)
    return result, rows


def test_settlement_against_the_dayahead_schedule():
    result, rows = _settlement("dayahead")
    reversal, normal = rows.get_loc((0, "P_down", True)), rows.get_loc((0, "P_down", False))
    # The reversal is counted first whichever row the LP took it from: 0.4 + 0.1.
    assert result.reversed[reversal] == pytest.approx(0.4)
    assert result.reversed[normal] == pytest.approx(0.1)
    # True cost: -100 x 0.5 (consumption regained) + 40 x 0.2 = -42.
    assert result.cost.sum() == pytest.approx(-42.0)
    assert result.paid.sum() == pytest.approx(30.0)
    assert result.imbalance.sum() == 0.0
    # The DSO supplies the 0.7 MWh it made the load consume, at 39.
    assert result.balance.sum() == pytest.approx(0.7 * 39.0)


def test_settlement_against_the_forecast():
    result, _ = _settlement("forecast")
    # The DSO pays only the 0.2 beyond the position, at the normal offer's 100.
    assert result.paid.sum() == pytest.approx(20.0)
    # The load buys back the 0.5 MWh it sold, at 39 + 10.
    assert result.imbalance.sum() == pytest.approx(-0.5 * 49.0)
    assert result.balance.sum() == pytest.approx(0.2 * 39.0)
    assert result.cost.sum() == pytest.approx(-42.0)


# --- the stage in a run ---------------------------------------------------------------

NOON = (12, 13, 14)  # cigre-mv's midday overvoltage at the feeder end (bus 11)


def _noon() -> Scenario:
    return replace(default_scenario(load_grid("cigre-mv")), hours=NOON)


def _gamer(learner: dict) -> object:
    """A battery at bus 11 that may sell (discharge) at midday, beside the PV there."""
    return population_from_dict({"fsp": [
        {"id": "battery", "type": "der_aggregator", "learner": learner,
         "cost": {"P_up": 60.0, "P_down": 60.0},
         "assets": [{"kind": "storage", "bus": 11, "power_mw": 0.5, "energy_mwh": 2.0,
                     "soc_initial": 1.0, "soc_final": 0.0}]},
        {"id": "pv_11", "type": "pv_inverter", "bus": 11, "share": 1.0,
         "learner": {"kind": "truthful"},
         "cost": {"P_down": 80.0, "Q_up": 4.0, "Q_down": 4.0}},
    ]})


def _settings(population, baseline: str = "dayahead", enabled: bool = True,
              pricing: str = "pay-as-bid") -> ModelSettings:
    return ModelSettings(
        grid="cigre-mv", population=population, design="CMVC_PQ", pricing=pricing,
        scenario=_noon(), ac_every=1000,
        actions=ActionGrid(markups=(0.0,), cap_action=False),
        dayahead=DayAheadParams(enabled=enabled, baseline=baseline, block_hours=24,
                                positions=(0.0, 1.0), kinds=("storage",)))


def test_a_stage_whose_providers_stay_put_changes_nothing():
    # Truthful providers take the day-ahead-truthful positions: selling at 38-39 loses
    # against a wear of 60, so the battery stays put and every round is as without the
    # stage.
    population = _gamer({"kind": "truthful"})
    rounds = {}
    for enabled in (False, True):
        model = LFMModel(_settings(population, enabled=enabled), seed=3)
        for _ in range(3):
            model.step()
        rounds[enabled] = model.records()["rounds"]
    assert (rounds[True].dayahead_mwh == 0).all()
    for column in ("dso_cost", "unmet_need_before", "unmet_need_no_market"):
        np.testing.assert_allclose(rounds[True][column], rounds[False][column], rtol=1e-9)


def test_a_limitation_in_the_need_periods_leaves_nothing_to_game():
    # Every period of the midday scenario has a need: held there, the battery's sale
    # schedules nothing and creates no need; its truthful positions lose nothing.
    settings = _settings(_gamer({"kind": "epsilon-greedy"}))
    settings = replace(settings, dayahead=replace(settings.dayahead, limitation=True))
    model = LFMModel(settings, seed=0)
    for _ in range(10):
        model.step()
    rounds = model.records()["rounds"]
    assert (rounds.dayahead_mwh == 0).all() and (rounds.need_created == 0).all()
    assert (rounds.limitation_cost == 0).all()


def _modal_position(learner: dict, baseline: str, seed: int, blind: bool = False,
                    rounds: int = 120) -> tuple[float, pd.DataFrame]:
    model = LFMModel(_settings(_gamer(learner), baseline), seed=seed)
    battery = next(fsp for fsp in model.fsps if fsp.fsp_id == "battery")
    if blind:
        battery.position_learners = [RewardBlind(make_learner(learner, battery.position_grid))]
    chosen = []
    for _ in range(rounds):
        model.step()
        chosen.append(int(battery.position_actions[0]))
    late = np.bincount(chosen[-rounds // 5:], minlength=2)
    return battery.position_grid.positions[int(np.argmax(late))], model.records()["rounds"]


@pytest.mark.slow
def test_learners_find_inc_dec_gaming_and_the_forecast_baseline_removes_it():
    learner = {"kind": "epsilon-greedy"}
    gaming = [_modal_position(learner, "dayahead", seed)[0] for seed in range(5)]
    honest = [_modal_position(learner, "forecast", seed)[0] for seed in range(5)]
    blind = [_modal_position(learner, "dayahead", seed, blind=True)[0] for seed in range(5)]
    assert sum(p == 1.0 for p in gaming) >= 4, gaming
    assert sum(p == 0.0 for p in honest) >= 4, honest
    assert sum(p == 1.0 for p in blind) <= 3, blind


def test_gaming_creates_the_need_it_is_paid_to_undo():
    _, rounds = _modal_position({"kind": "epsilon-greedy"}, "dayahead", seed=0, rounds=40)
    sold = rounds[rounds.dayahead_mwh > 0]
    assert len(sold) and (sold.need_created > 0).all()
    assert (sold.inc_dec_mwh > 0).all()
    assert math.isclose(rounds.need_created[rounds.dayahead_mwh == 0].abs().max(), 0.0,
                        abs_tol=1e-9)


def test_without_a_battery_each_block_is_chosen_alone_however_many_blocks():
    # 24 one-hour blocks: 5^24 profiles, too many to enumerate, and none needed: the
    # 40-EUR generator sells exactly in the hours whose price beats 40.
    book = _generator_book(40.0, block_hours=1)
    expected = (np.asarray(DEFAULT_PRICE) > 40.0).astype(float)
    np.testing.assert_array_equal(book.truthful_shares("g"), expected)
    assert book.truthful_profit("g") == pytest.approx(
        np.maximum(np.asarray(DEFAULT_PRICE) - 40.0, 0.0).sum())


def test_fixed_learners_take_the_truthful_positions_whatever_their_markup():
    # A markup of 0.5 is on the bids' grid, not on the positions' (which has none).
    settings = _settings(_gamer({"kind": "fixed-markup", "markup": 0.5}))
    model = LFMModel(replace(settings, actions=ActionGrid(markups=(0.0, 0.5),
                                                          cap_action=False)), seed=0)
    battery = next(fsp for fsp in model.fsps if fsp.fsp_id == "battery")
    assert battery.fixed_shares.tolist() == [0.0] and not battery.position_learners


def test_what_a_run_with_a_dayahead_stage_does_not_support_is_refused():
    settings = _settings(_gamer({"kind": "truthful"}))
    with pytest.raises(InputError, match="resample_days"):
        replace(settings, resample_days=True)
    with pytest.raises(InputError, match=r"market\.dso_tools"):
        replace(settings, market=replace(settings.market, dso_tools=("oltc",)))


def test_moved_rounds_have_no_truthful_benchmark_in_the_kpis():
    from lfm_abm.results.kpis import run_kpis

    model = LFMModel(_settings(_gamer({"kind": "random"})), seed=1)
    for _ in range(12):
        model.step()
    rounds = model.records()["rounds"]
    assert rounds.truthful_cost.isna().any() and rounds.truthful_cost.notna().any()
    kpis = run_kpis(model.records(), 12, model.settings.actions)
    assert math.isnan(kpis["truthful_cost"]) and math.isnan(kpis["cost_ratio"])
    assert kpis["inc_dec_mwh"] > 0 and kpis["dayahead_mwh"] > 0


def test_the_moved_day_benchmark_agrees_with_one_power_flow_per_period():
    from lfm_abm.bench import moved_day_cost

    table = moved_day_cost("cigre-mv", 2)
    assert len(table) == 2 and (table["largest need difference"] < 1e-6).all()
