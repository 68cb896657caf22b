"""The Mesa model: reproducibility, settlement identities, monopoly and competition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lfm_abm import simulate
from lfm_abm.agents.population import load_population, population_from_dict
from lfm_abm.market.clearing import Market
from lfm_abm.market.params import MarketParams
from lfm_abm.model import LFMModel, ModelSettings
from lfm_abm.network.scenarios import Scenario

MIDDAY = Scenario(ev_peak_mw=1.5, hours=(12, 13), source="test scenario")
NO_AC = 10**6  # AC validation only in round 1: these tests are about the economics


def run(population, rounds, seed=0, design="CM_P", pricing="pay-as-bid", **settings):
    if isinstance(population, dict):
        population = population_from_dict(population, "test population")
    settings.setdefault("scenario", MIDDAY)
    settings.setdefault("ac_every", NO_AC)
    model = LFMModel(ModelSettings("cigre-mv", population, design, pricing, **settings), seed)
    for _ in range(rounds):
        model.step()
    return model, model.records()


@pytest.fixture(scope="module")
def cigre_population():
    return load_population("agents/cigre_mv.toml")


def test_same_seed_same_records_different_seed_differs(cigre_population):
    _, first = run(cigre_population, 15, seed=4, design="CMVC_PQ", ac_every=5)
    _, again = run(cigre_population, 15, seed=4, design="CMVC_PQ", ac_every=5)
    _, other = run(cigre_population, 15, seed=5, design="CMVC_PQ", ac_every=5)
    timing = ["solve_seconds"]
    pd.testing.assert_frame_equal(first["rounds"].drop(columns=timing),
                                  again["rounds"].drop(columns=timing))
    pd.testing.assert_frame_equal(first["agents"], again["agents"])
    assert not first["agents"].action.equals(other["agents"].action)


@pytest.mark.parametrize("pricing", ["pay-as-bid", "locational"])
def test_settlement_identities_every_round(cigre_population, pricing):
    _, records = run(cigre_population, 12, design="CMVC_PQ", pricing=pricing)
    rounds, agents = records["rounds"], records["agents"]
    paid = agents.groupby("round").payment.sum()
    np.testing.assert_allclose(paid.to_numpy(), rounds.dso_cost.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(agents.payment - agents.true_cost, agents.profit, atol=1e-9)
    assert (agents.profit >= -1e-6).all()  # nobody is paid below true cost
    awards = records["awards"]
    per_round = awards.groupby("round").payment.sum()
    np.testing.assert_allclose(per_round.to_numpy(), rounds.dso_cost.to_numpy(), rtol=1e-9)
    if pricing == "pay-as-bid":
        np.testing.assert_allclose(rounds.dso_cost, rounds.cost_at_bid_prices)


@pytest.mark.parametrize(("market", "learned"), [
    ({}, 0.5), ({"curtailment_price": 1000.0}, 8.0), ({"emergency_priority": "market-first"},
                                                       8.0)])
def test_monopolist_learns_the_highest_price_the_dso_accepts(market, learned):
    """Only the PV at the feeder end (cost 60) can relieve the midday overload; under
    pay-as-bid a learning monopolist's markup climbs to the largest one whose price the
    DSO still prefers to its own emergency action, curtailment on the feeder:

    * least-cost, curtailment compensated at 100 EUR/MWh: markup 0.5 (90); markup 1
      (120) loses to curtailing the same MW itself;
    * curtailment priced at VOLL (1000): markup 8 (540). Markups 16 and 32 (1020, 1980)
      exceed the reservation price (VOLL) and are not admitted; the cap action (1000)
      loses to curtailment elsewhere on the feeder, which relieves the line more per MW;
    * market-first: the DSO weighs curtailment as if it cost the reservation price
      (1000 per MW, its priority scaled so that an offer comes first per MW), so the
      monopolist learns what it learns with curtailment at VOLL: markup 8. The cap action
      (1000 per MW) still loses to curtailment elsewhere that relieves more per MW.
    """
    population = {"fsp": [{"id": "pv_11", "type": "pv_inverter", "bus": 11,
                           "cost": {"P_down": 60.0}, "learner": {"kind": "roth-erev"}}]}
    model, records = run(population, 250, market=MarketParams(**market))
    agents, rounds = records["agents"], records["rounds"]
    assert agents.reward.head(50).mean() < agents.reward.tail(50).mean()
    assert agents.markup.tail(50).median() == pytest.approx(learned)
    assert rounds.cost_ratio.tail(50).mean() > 0.9 * (1.0 + learned)
    rejected = agents[agents.markup.isin([16.0, 32.0])]
    assert (rejected.awarded == 0).all()
    assert (rounds.offers_above_reservation > 0).sum() == len(rejected)
    if market == {"curtailment_price": 1000.0}:
        assert len(rejected)
        capped = dict(population["fsp"][0], learner={"kind": "fixed-markup", "markup": "cap"})
        _, at_cap = run({"fsp": [capped]}, 2, market=MarketParams(**market))
        assert (at_cap["agents"].action == len(model.settings.actions) - 1).all()
        assert (at_cap["agents"].awarded == 0).all()
        assert at_cap["agents"].markup.to_numpy() == pytest.approx(1000.0 / 60 - 1)


def test_the_reward_of_a_profit_does_not_depend_on_voll_or_the_cap(cigre_population):
    """The reward unit is the true cost of one period of a group's full offer: it reads
    the group's own costs and capacities only, so a VOLL sweep does not change how fast
    agents learn."""
    from lfm_abm.learning.feedback import stationary_reward

    scales = []
    for market in (MarketParams(voll=300.0), MarketParams(voll=3000.0),
                   MarketParams(voll=3000.0, reservation_price=500.0)):
        model = LFMModel(ModelSettings("cigre-mv", cigre_population, "CMVC_PQ", market=market,
                                       scenario=MIDDAY), seed=0)
        scales.append({(fsp.fsp_id, family): scale for fsp in model.fsps
                       for family, scale in fsp.scales.items()})
    assert scales[0] == scales[1] == scales[2]
    assert sum(scale > 0 for scale in scales[0].values()) >= 5
    rewards = [[stationary_reward(25.0, scale) for scale in found.values()] for found in scales]
    assert rewards[0] == rewards[1] == rewards[2]
    # One period of a PV inverter's full P offer at cost: a profit of that size is reward 1.
    model_fsp = next(f for f in model.fsps if "P" in f.scales)
    assert stationary_reward(model_fsp.scales["P"], model_fsp.scales["P"]) == 1.0


def test_competition_keeps_markups_near_cost():
    """Eight identical batteries at the same bus, each able to cover much of the need:
    Bertrand competition drives the accepted prices to cost. Curtailment is priced at
    VOLL, so that no cheap outside option does the disciplining."""
    population = {"fsp": [{"id": f"battery_{i}", "type": "der_aggregator", "assets": [
        {"kind": "storage", "bus": 11, "power_mw": 1.5, "energy_mwh": 10.0, "soc_initial": 0.0,
         "cost": {"P_down": 50.0}}]}
        for i in range(8)]}
    _, records = run(population, 250, market=MarketParams(curtailment_price=1000.0))
    rounds = records["rounds"]
    assert rounds.cost_ratio.tail(50).mean() < 1.5
    assert rounds.cost_ratio.head(20).mean() > rounds.cost_ratio.tail(50).mean()


def test_truthful_agents_reproduce_the_one_shot_clearing(cigre_population):
    model, records = run(cigre_population, 3, design="CMVC_PQ",
                         learner={"kind": "truthful"}, scenario=None, ac_every=1)
    rounds = records["rounds"]
    np.testing.assert_allclose(rounds.dso_cost, rounds.truthful_cost)
    day = model.day(model.days[0])
    one_shot = Market(day.case, "CMVC_PQ").clear(day.book.truthful_bids(), day.book.devices)
    assert rounds.dso_cost.iloc[-1] == pytest.approx(one_shot.procurement_cost)
    summary = one_shot.summary(day.case.params)
    assert rounds.unmet_need_after_ac.iloc[-1] == pytest.approx(summary["unmet_need_after_ac"])


def test_simulate_entry_point_columns():
    frame = simulate("cigre-mv", "agents/cigre_mv.toml", "CMVC_PQ", rounds=3, seed=1,
                     scenario=MIDDAY)
    assert list(frame["round"]) == [1, 2, 3]
    for column in ("dso_cost", "truthful_cost", "unmet_need_before", "unmet_need_after_ac"):
        assert column in frame and frame[column].notna().all()


def test_rounds_without_ac_validation_report_unknown_not_zero(cigre_population):
    _, records = run(cigre_population, 3, design="CMVC_PQ", ac_every=2)
    rounds = records["rounds"]
    assert list(rounds.ac_validated) == [True, False, True]
    assert np.isnan(rounds.unmet_need_after_ac.iloc[1])


def test_stochastic_days_draw_from_the_scenario():
    population = population_from_dict({"fsp": [
        {"id": "pv_a", "type": "pv_inverter", "bus": 25, "cost": {"P_down": 70.0}}]}, "test")
    scenario = Scenario(days=("2016-07-25", "2016-07-27"), hours=(11, 12), pv_scale=1.5,
                        source="test")
    settings = ModelSettings("simbench-semiurb", population, "CM_P", scenario=scenario,
                             resample_days=True, ac_every=NO_AC)
    model = LFMModel(settings, seed=2)
    for _ in range(6):
        model.step()
    days = model.records()["rounds"].day
    assert set(days) == {"2016-07-25", "2016-07-27"}


def test_a_failed_round_is_recorded_and_the_run_goes_on(cigre_population, monkeypatch):
    from lfm_abm.agents.dso import DSO
    from lfm_abm.errors import PowerFlowError
    from lfm_abm.market.engines import SolverError

    clear, validate = DSO.clear, DSO.validate
    calls = {"clear": 0, "validate": 0}

    def flaky_clear(self, *args, **kwargs):
        calls["clear"] += 1
        if calls["clear"] == 3:  # round 3
            raise SolverError("HiGHS returned Time limit reached")
        return clear(self, *args, **kwargs)

    def flaky_validate(self, *args):
        calls["validate"] += 1
        if calls["validate"] == 4:  # round 5 (round 3 failed before validation)
            raise PowerFlowError("AC power flow did not converge in period h13")
        return validate(self, *args)

    monkeypatch.setattr(DSO, "clear", flaky_clear)
    monkeypatch.setattr(DSO, "validate", flaky_validate)
    _, records = run(cigre_population, 7, design="CMVC_PQ", ac_every=1)
    rounds = records["rounds"]
    assert list(rounds["round"]) == [1, 2, 3, 4, 5, 6, 7]
    failed = rounds[rounds.status != "ok"]
    assert list(failed["round"]) == [3, 5]
    assert "SolverError" in failed.status.iloc[0] and "period h13" in failed.status.iloc[1]
    assert set(records["agents"]["round"]) == {1, 2, 4, 6, 7}  # no learning from failures


def test_a_finished_model_is_freed(cigre_population):
    """Nothing keeps a run's model alive once the caller lets go of it (Mesa 3.3 kept
    every model in `Agent._ids`: a study's worker grew by ~75 MB a run)."""
    import gc
    import weakref

    model, _ = run(cigre_population, 2, design="CMVC_PQ")
    assert len({agent.unique_id for agent in model.agents}) == len(model.agents)
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None


def test_paid_at_cost_is_zero_profit_not_noise(cigre_population):
    _, records = run(cigre_population, 3, design="CMVC_PQ", learner={"kind": "truthful"})
    agents = records["agents"]
    assert (agents.profit == 0.0).all() and (agents.reward == 0.0).all()


def test_true_costs_above_the_reservation_price_are_rejected():
    from lfm_abm.errors import InputError
    from lfm_abm.market.params import MarketParams

    population = {"fsp": [{"id": "pv_11", "type": "pv_inverter", "bus": 11,
                           "cost": {"P_down": 500.0}}]}
    run(population, 1, market=MarketParams(voll=1000.0))  # below the reservation price
    with pytest.raises(InputError) as err:
        run(population, 1, market=MarketParams(voll=1000.0, reservation_price=400.0))
    assert err.value.field == "fsp pv_11: cost.P_down"
    assert "reservation price 400" in str(err.value)


def test_a_day_without_needs_clears_nothing_and_costs_nothing(cigre_population):
    """At 03:00 cigre-mv has no need: nothing is offered, bought or curtailed. (An empty
    offer book once had columns of dtype object, which the LP's products refused.)"""
    night = Scenario(ev_peak_mw=1.5, hours=(3,), source="test scenario")
    model, records = run(cigre_population, 2, design="VC_Q", scenario=night)
    day = model.day(model.days[0])
    assert len(day.book.offers) == 0 and day.book.offers.cost.dtype == float
    rounds = records["rounds"]
    assert (rounds.dso_cost == 0).all() and rounds.unmet_need_after_ac.iloc[0] == 0  # AC: round 1
