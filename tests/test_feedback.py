"""What learners are told: a stationary reward over a fixed scale, and the award-share state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lfm_abm.agents.population import population_from_dict
from lfm_abm.learning import ActionGrid, make_learner
from lfm_abm.learning.feedback import award_state, learn_round, reward_scale, stationary_reward
from lfm_abm.market.params import MarketParams
from lfm_abm.model import LFMModel, ModelSettings
from lfm_abm.network.scenarios import Scenario


def test_reward_is_profit_over_the_scale_floored_not_capped():
    assert stationary_reward(25.0, 100.0) == 0.25
    assert stationary_reward(-5.0, 100.0) == 0.0
    assert stationary_reward(150.0, 100.0) == 1.5  # a pivotal seller earns many units
    assert stationary_reward(0.0, 0.0) == 0.0  # nothing to sell: every action worth 0
    for scale in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="scale"):
            stationary_reward(1.0, scale)


def test_scale_is_the_true_cost_of_one_period_of_the_full_offer():
    # 50 x 2 MW x 1 h + 80 x 1 MW x 0.5 h + 120 x 3 MW x 1 h over periods {4, 5}: 250 EUR.
    # Selling it all at markup m in one period earns reward m.
    assert reward_scale([50.0, 80.0, 120.0], [2.0, 1.0, 3.0], [1.0, 0.5, 1.0],
                        [4, 4, 5]) == 250.0
    assert reward_scale([], [], [], []) == 0.0


@pytest.mark.parametrize(("share", "state"), [(0.0, 0), (1e-9, 0), (1e-3, 1), (0.5, 1),
                                              (0.989, 1), (0.99, 2), (1.0, 2)])
def test_award_share_buckets(share, state):
    assert award_state(share) == state


def test_learn_round_updates_in_the_state_it_was_in():
    learner = make_learner({"kind": "q-learning", "alpha": 1.0},
                           ActionGrid(markups=(0, 1), cap_action=False))
    reward, state = learn_round(learner, 1, 0, profit=30.0, scale=120.0, share=1.0,
                                profile=(1, 0))
    assert (reward, state) == (0.25, 2)
    assert learner.values(0).tolist() == [0.0, 0.25]
    assert learner.values(2).tolist() == [0.0, 0.0]
    profiled = make_learner({"kind": "q-learning", "alpha": 1.0, "observe": "profile"},
                            ActionGrid(markups=(0, 1), cap_action=False))
    assert learn_round(profiled, 1, 0, 30.0, 120.0, 1.0, profile=(1, 0)) == (0.25, (1, 0))


def test_fsps_learn_from_a_fixed_scale_and_their_award_share():
    population = population_from_dict({"fsp": [
        {"id": f"pv_{bus}", "type": "pv_inverter", "bus": bus, "cost": {"P_down": 60.0},
         "learner": {"kind": "q-learning"}} for bus in (10, 11)]}, "test population")
    settings = ModelSettings("cigre-mv", population, "CM_P",
                             scenario=Scenario(ev_peak_mw=1.5, hours=(12, 13)),
                             ac_every=10**6)
    model = LFMModel(settings, 0)
    for _ in range(30):
        model.step()
    agents = model.records()["agents"]
    book = model.day(model.days[0]).book
    for fsp in model.fsps:
        mine = (book.offers.provider_id == fsp.fsp_id).to_numpy()
        periods = book.offers.period[mine].nunique()
        scale = float((book.offers.cost * book.offers.capacity)[mine] @ book.hours[mine]
                      ) / periods
        assert fsp.scales == {"P": pytest.approx(scale)}
        rows = agents[agents.fsp_id == fsp.fsp_id]
        np.testing.assert_allclose(rows.reward, np.maximum(rows.profit / scale, 0.0))
        last = rows.iloc[-1]
        assert fsp.state["P"] == award_state(last.awarded / last.offered)
    # Ordinary profits are rewards of order 1, not 1e-4 of a scale set by the cap.
    assert agents.reward[agents.reward > 0].median() > 0.05
    assert all(fsp.scales["P"] > 0 for fsp in model.fsps)


def test_the_same_profit_is_the_same_reward_at_any_voll():
    """The scale is a true cost, so a VOLL sweep does not change how fast agents learn."""
    population = population_from_dict({"fsp": [
        {"id": "pv_10", "type": "pv_inverter", "bus": 10, "cost": {"P_down": 60.0},
         "learner": {"kind": "roth-erev"}}]}, "test population")
    scales = []
    for voll in (300.0, 3000.0):
        settings = ModelSettings("cigre-mv", population, "CM_P",
                                 scenario=Scenario(ev_peak_mw=1.5, hours=(12, 13)),
                                 market=MarketParams(voll=voll), ac_every=10**6)
        model = LFMModel(settings, 0)
        model.step()
        scales.append(model.fsps[0].scales)
    assert scales[0] == scales[1]
    assert scales[0]["P"] > 0
