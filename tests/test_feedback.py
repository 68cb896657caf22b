"""What learners are told: a stationary reward over a fixed scale, and the award-share state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lfm_abm.agents.population import population_from_dict
from lfm_abm.learning import ActionGrid, make_learner
from lfm_abm.learning.feedback import award_state, learn_round, reward_scale, stationary_reward
from lfm_abm.model import LFMModel, ModelSettings
from lfm_abm.network.scenarios import Scenario


def test_reward_is_profit_over_the_scale_clipped():
    assert stationary_reward(25.0, 100.0) == 0.25
    assert stationary_reward(-5.0, 100.0) == 0.0
    assert stationary_reward(150.0, 100.0) == 1.0
    assert stationary_reward(0.0, 0.0) == 0.0  # nothing to sell: every action worth 0
    for scale in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="scale"):
            stationary_reward(1.0, scale)


def test_scale_is_the_most_offers_earn_at_the_reservation_price():
    # (100 - 50) x 2 MW x 1 h + (100 - 80) x 1 MW x 0.5 h; the offer dearer than the
    # reservation price can earn nothing.
    assert reward_scale([50.0, 80.0, 120.0], [2.0, 1.0, 3.0], [1.0, 0.5, 1.0], 100.0) == 110.0
    assert reward_scale([], [], [], 100.0) == 0.0


@pytest.mark.parametrize(("share", "state"), [(0.0, 0), (1e-9, 0), (1e-3, 1), (0.5, 1),
                                              (0.989, 1), (0.99, 2), (1.0, 2)])
def test_award_share_buckets(share, state):
    assert award_state(share) == state


def test_learn_round_updates_in_the_state_it_was_in():
    learner = make_learner({"kind": "q-learning", "alpha": 1.0}, ActionGrid(markups=(0, 1)))
    reward, state = learn_round(learner, 1, 0, profit=30.0, scale=120.0, share=1.0)
    assert (reward, state) == (0.25, 2)
    assert learner.values(0).tolist() == [0.0, 0.25]
    assert learner.values(2).tolist() == [0.0, 0.0]


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
    reservation = settings.market.max_bid_price
    for fsp in model.fsps:
        mine = (book.offers.provider_id == fsp.fsp_id).to_numpy()
        scale = float(((reservation - book.offers.cost) * book.offers.capacity)[mine]
                      @ book.hours[mine])
        assert fsp.scales == {"P": pytest.approx(scale)}
        rows = agents[agents.fsp_id == fsp.fsp_id]
        expected = np.clip(rows.profit / scale, 0.0, 1.0)
        np.testing.assert_allclose(rows.reward, expected)
        last = rows.iloc[-1]
        assert fsp.state["P"] == award_state(last.awarded / last.offered)
    assert (agents.reward > 0).any() and (agents.reward < 1).all()
    assert all(fsp.scales["P"] > 0 for fsp in model.fsps)
