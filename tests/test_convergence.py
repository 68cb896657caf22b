"""Settled play: block-wise choice frequencies of earning learners, and when it counts as
converged; on hand-built runs and on learners (with controls) in a small game."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from controls import control

from lfm_abm.errors import InputError
from lfm_abm.learning import ActionGrid
from lfm_abm.learning.convergence import (
    DECIDED_TV,
    STABLE_TV,
    converged,
    learning_diagnostics,
    rounds_to_stable,
    settled_pairs,
)
from lfm_abm.learning.games import deviation_table, play, played_regret

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
    assert rounds_to_stable(agents, N_ACTIONS) == 1.0


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
    stable = rounds_to_stable(agents, N_ACTIONS)
    assert switch - 25 < stable <= switch + 25
    assert (stable - 1) % 25 == 0  # the first round of a block


def test_learners_that_never_earn_are_ignored():
    rng = np.random.default_rng(2)
    steady = settled(rng, np.full(ROUNDS, 3))
    idle = rng.integers(N_ACTIONS, size=ROUNDS)  # uniform: neither settled nor decided
    alone = rounds_to_stable(table(a=earning(steady)), N_ACTIONS)
    assert rounds_to_stable(table(a=earning(steady), idle=(idle, np.zeros(ROUNDS))),
                            N_ACTIONS) == alone
    # A learner counts in the blocks where it earns: one switching its action every
    # block makes the end unsettled if it earns in its last block, only the start if it
    # earns in its first.
    switching = np.where((np.arange(ROUNDS) // 25) % 2 == 0, 3, 7)
    late, early = np.zeros(ROUNDS), np.zeros(ROUNDS)
    late[-1], early[0] = 1.0, 1.0
    assert math.isnan(rounds_to_stable(table(a=earning(steady), idle=(switching, late)),
                                       N_ACTIONS))
    assert rounds_to_stable(table(a=earning(steady), idle=(switching, early)),
                            N_ACTIONS) == 26.0


def test_nan_without_earners_without_two_blocks_or_without_settling():
    rng = np.random.default_rng(3)
    steady = settled(rng, np.full(ROUNDS, 3))
    assert math.isnan(rounds_to_stable(table(a=(steady, np.zeros(ROUNDS))), N_ACTIONS))
    assert math.isnan(rounds_to_stable(table(a=earning(steady[:49])), N_ACTIONS))
    assert rounds_to_stable(table(a=earning(steady[:50])), N_ACTIONS) == 1.0
    alternating = np.where((np.arange(ROUNDS) // 25) % 2 == 0, 3, 7)
    assert math.isnan(rounds_to_stable(table(a=earning(alternating)), N_ACTIONS))
    assert math.isnan(rounds_to_stable(pd.DataFrame(), N_ACTIONS))


def test_uniform_play_never_settles():
    # Uniform play does not move (block TV 0.37 with 11 actions) but it is not decided:
    # over 500 runs each of 1, 3 and 10 uniform learners (200 rounds, 11 actions) it
    # never settled, its largest mean TV from uniform 0.39 (one learner) against 0.5.
    rng = np.random.default_rng(0)
    for players in (1, 3):
        for _ in range(100):
            actions = rng.integers(11, size=(200, players))
            agents = table(**{f"f{i}": earning(actions[:, i]) for i in range(players)})
            assert math.isnan(rounds_to_stable(agents, 11))
            assert settled_pairs(agents, 11).tv_uniform.max() < DECIDED_TV


def test_blocks_count_recorded_rounds():
    # Failed rounds leave no agent rows; blocks are cut from the rounds that exist.
    rng = np.random.default_rng(4)
    greedy = np.where(np.arange(1, ROUNDS + 1) <= 300, 3, 7)
    agents = table(a=earning(settled(rng, greedy)))
    agents = agents[~agents["round"].between(101, 110)]
    stable = rounds_to_stable(agents, N_ACTIONS)
    assert stable in set(agents["round"])
    assert 300 < stable <= 335


@pytest.mark.parametrize(("kwargs", "field"), [({"block": 0}, "block"),
                                               ({"block": 2.5}, "block"),
                                               ({"threshold": 1.5}, "threshold"),
                                               ({"threshold": -0.1}, "threshold"),
                                               ({"decided": 2}, "decided"),
                                               ({"n_actions": 5}, "n_actions")])
def test_bad_parameters_are_named(kwargs, field):
    agents = table(a=earning(np.arange(100) % 10))
    with pytest.raises(InputError) as err:
        rounds_to_stable(agents, **{"n_actions": N_ACTIONS, **kwargs})
    assert err.value.field == field


def test_learning_diagnostics_of_the_window_earners():
    # Learner a earns and plays its greedy action (recorded after the round before) in 3
    # of its 4 window rounds; b never earns in the window and is left out.
    agents = pd.DataFrame({
        "round": [1, 2, 3, 4, 5] * 2, "fsp_id": ["a"] * 5 + ["b"] * 5, "family": "P",
        "action": [0, 2, 2, 1, 2, 5, 5, 5, 5, 5], "greedy": [2, 2, 2, 2, 2, 5, 5, 5, 5, 5],
        "profit": [0, 1, 1, 0, 1, 0, 0, 0, 0, 0], "entropy": [1, 0.5, 0.4, 0.3, 0.2] + [0.9] * 5})
    out = learning_diagnostics(agents, {2, 3, 4, 5})
    assert out == {"entropy_earners": pytest.approx(0.35), "greedy_share": 0.75,
                   "all_greedy_share": 0.75, "earners": 1.0}
    assert math.isnan(learning_diagnostics(agents, {4})["greedy_share"])


# --- converged: settled and near best responses, on learners and their controls ---------

GRID = ActionGrid()
#: A player's profit by its own action (the other adds a tenth of its own): action 4
#: pays best whatever the other plays; only there does a player forgo under 20 % of its
#: best response's profit.
PROFIT = np.array([0.0, 0.1, 0.25, 0.5, 1.0, 0.6, 0.3, 0.1, 0.0, 0.0, 0.0])
GAME_ROUNDS, WINDOW = 300, 50


def game_profits(profile: tuple[int, ...]) -> np.ndarray:
    own = PROFIT[list(profile)]
    return own + 0.1 * own[::-1]


def converged_in_game(spec: dict, kind: str, seed: int) -> float:
    """`converged` of two learners (or controls) after GAME_ROUNDS rounds of the game."""
    learners = [control(spec, GRID, kind) for _ in range(2)]
    history = play(learners, game_profits, lambda p: (PROFIT[list(p)] > 0).astype(float),
                   [1.0, 1.0], GAME_ROUNDS, np.random.default_rng(seed))
    profits = np.array([game_profits(tuple(p)) for p in history])
    agents = table(**{f"p{i}": (history[:, i], profits[:, i]) for i in range(2)})
    tables = [deviation_table(p, [len(GRID)] * 2, game_profits) for p in history[-WINDOW:]]
    profit, regret, _ = played_regret(np.array([b for b, _ in tables]),
                                      np.array([t for _, t in tables]))
    share = float(regret.sum() / (profit + regret).sum())
    return converged(agents, len(GRID), GAME_ROUNDS - WINDOW + 1, share)


#: Measured over 20 seeds (converged / 20): Roth-Erev 19, epsilon-greedy 15, UCB1 20;
#: their reward-blind controls 0, 0, 0 and uniform play 0. Q-learning and EXP3 with
#: their defaults learn too slowly in 300 rounds on this scale (3 and 0 with Roth-Erev's
#: q0 = 1 at the time); their controls 1 and 0.
@pytest.mark.parametrize("spec", [{"kind": "roth-erev"}, {"kind": "epsilon-greedy"},
                                  {"kind": "ucb1"}], ids=lambda s: s["kind"])
def test_converged_separates_learning_from_lock_in_and_noise(spec):
    for kind, wanted in (("learner", 1.0), ("blind", 0.0), ("random", 0.0)):
        hits = [converged_in_game(spec, kind, seed) == wanted for seed in range(5)]
        assert sum(hits) >= 4, (kind, hits)


def test_a_reward_blind_lock_in_is_settled_but_not_converged():
    # Stability alone cannot see it: reward-blind Roth-Erev locks into a random action.
    learners = [control({"kind": "roth-erev"}, GRID, "blind") for _ in range(2)]
    history = play(learners, game_profits, lambda p: np.ones(2), [1.0, 1.0], GAME_ROUNDS,
                   np.random.default_rng(0))
    agents = table(**{f"p{i}": earning(history[:, i]) for i in range(2)})
    assert rounds_to_stable(agents, len(GRID)) <= GAME_ROUNDS - WINDOW + 1
    assert converged(agents, len(GRID), GAME_ROUNDS - WINDOW + 1, 0.8) == 0.0
    assert converged(agents, len(GRID), GAME_ROUNDS - WINDOW + 1) == 1.0  # unmeasured
