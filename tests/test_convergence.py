"""Rounds to stable: block-wise choice frequencies of earning learners, on hand-built runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lfm_abm.errors import InputError
from lfm_abm.learning.convergence import STABLE_TV, rounds_to_stable

ROUNDS = 1000
N_ACTIONS = 10


def settled(rng: np.random.Generator, greedy: np.ndarray, epsilon: float = 0.1) -> np.ndarray:
    """Epsilon-greedy choices around a per-round greedy action."""
    explore = rng.random(len(greedy)) < epsilon
    return np.where(explore, rng.integers(N_ACTIONS, size=len(greedy)), greedy)


def table(**learners: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    """Agents table from {fsp_id: (actions, profits)} over rounds 1, 2, ..."""
    frames = [pd.DataFrame({"round": np.arange(1, len(actions) + 1), "fsp_id": fsp_id,
                            "family": "P", "action": actions, "profit": profits})
              for fsp_id, (actions, profits) in learners.items()]
    return pd.concat(frames, ignore_index=True)


def earning(actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return actions, np.ones(len(actions))


def test_a_settled_learner_is_stable_from_the_start():
    rng = np.random.default_rng(0)
    agents = table(a=earning(settled(rng, np.full(ROUNDS, 3))))
    assert rounds_to_stable(agents) == 1.0


def test_exploration_noise_of_a_settled_learner_stays_under_the_threshold():
    # The sampling argument of STABLE_TV: 4000 independent block pairs of one settled
    # learner (epsilon 0.1, 10 actions, 25 rounds per block).
    rng = np.random.default_rng(1)
    p = np.full(N_ACTIONS, 0.01)
    p[0] = 0.91
    counts = rng.multinomial(25, p, size=(2, 4000)) / 25
    tv = 0.5 * np.abs(counts[0] - counts[1]).sum(axis=1)
    assert tv.mean() == pytest.approx(0.10, abs=0.01)
    assert np.mean(tv > STABLE_TV) < 0.003
    uniform = rng.multinomial(25, np.full(N_ACTIONS, 0.1), size=(2, 4000)) / 25
    assert 0.5 * np.abs(uniform[0] - uniform[1]).sum(axis=1).mean() > STABLE_TV


@pytest.mark.parametrize("switch", [500, 510, 737])
def test_a_learner_that_switches_is_stable_from_the_block_after(switch):
    rng = np.random.default_rng(switch)
    greedy = np.where(np.arange(1, ROUNDS + 1) <= switch, 3, 7)
    agents = table(a=earning(settled(rng, greedy)), b=earning(settled(rng, np.full(ROUNDS, 5))))
    stable = rounds_to_stable(agents)
    assert switch - 25 < stable <= switch + 25
    assert (stable - 1) % 25 == 0  # the first round of a block


def test_learners_that_never_earn_are_ignored():
    rng = np.random.default_rng(2)
    steady = settled(rng, np.full(ROUNDS, 3))
    idle = rng.integers(50, size=ROUNDS)  # uniform over many actions: TV near 1
    alone = rounds_to_stable(table(a=earning(steady)))
    assert rounds_to_stable(table(a=earning(steady), idle=(idle, np.zeros(ROUNDS)))) == alone
    profit = np.zeros(ROUNDS)
    profit[0] = 1.0  # one round of profit makes it count, and it never settles
    assert math.isnan(rounds_to_stable(table(a=earning(steady), idle=(idle, profit))))


def test_nan_without_earners_without_two_blocks_or_without_settling():
    rng = np.random.default_rng(3)
    steady = settled(rng, np.full(ROUNDS, 3))
    assert math.isnan(rounds_to_stable(table(a=(steady, np.zeros(ROUNDS)))))
    assert math.isnan(rounds_to_stable(table(a=earning(steady[:49]))))
    assert rounds_to_stable(table(a=earning(steady[:50]))) == 1.0
    alternating = np.where((np.arange(ROUNDS) // 25) % 2 == 0, 3, 7)
    assert math.isnan(rounds_to_stable(table(a=earning(alternating))))
    assert math.isnan(rounds_to_stable(pd.DataFrame()))


def test_blocks_count_recorded_rounds():
    # Failed rounds leave no agent rows; blocks are cut from the rounds that exist.
    rng = np.random.default_rng(4)
    greedy = np.where(np.arange(1, ROUNDS + 1) <= 300, 3, 7)
    agents = table(a=earning(settled(rng, greedy)))
    agents = agents[~agents["round"].between(101, 110)]
    stable = rounds_to_stable(agents)
    assert stable in set(agents["round"])
    assert 300 < stable <= 335


@pytest.mark.parametrize(("kwargs", "field"), [({"block": 0}, "block"),
                                               ({"block": 2.5}, "block"),
                                               ({"threshold": 1.5}, "threshold"),
                                               ({"threshold": -0.1}, "threshold")])
def test_bad_parameters_are_named(kwargs, field):
    agents = table(a=earning(np.zeros(100, dtype=int)))
    with pytest.raises(InputError) as err:
        rounds_to_stable(agents, **kwargs)
    assert err.value.field == field
