"""Games with known answers: equilibria enumerated, then learners checked against them.

Textbook games check the harness itself. The market games take their payoffs from the
real clearing (`clear_stage`, pay-as-bid) of one overloaded line: a need of 2 MW of
P_down at bus 1, suppliers there bidding cost x (1 + markup), or the reservation price
for the grid's cap action, emergency curtailment at VOLL = 1000 EUR/MWh for whatever the
market does not cover, bids above the reservation price not admitted. Learners are
trained with `games.play`, which rewards and observes exactly as FSP agents do in the
model; every learning kind of the registry plays every market game with pure equilibria.

Every check of what learners learn has teeth: it runs two controls that learn nothing
from profit, and asserts that they fail. `{"kind": "random"}` plays uniformly at random;
`RewardBlind` (tests/controls.py) wraps a default Roth-Erev learner and tells it that
every action earned 0.5, so it locks into an arbitrary action: stable and concentrated,
which a criterion on the learned profile alone cannot tell from learning. Real learners
must pass in at least 4 of the 5 seeds, each control must fail in at least 4 of them.
Ties are broken at random wherever an argmax is taken (`Learner.greedy`,
`modal_profile`): a tie resolved by index goes to action 0, the truthful bid, and made a
learner that learnt nothing look competitive.

Exact price ties in the clearing are left to the LP, as in the model. Each profile is
cleared by a fresh LP (a warm-started solver splits tied bids according to its previous
basis, so payoffs would depend on the order in which profiles are first met), which
splits a tie the same way every time: in these games the last listed of bids that can
each cover the need takes it all, and of two bids that cannot, the first listed is
filled first (`test_exact_ties_go_where_the_lp_puts_them`). The enumerated equilibria
use the same oracle, so the tie rule is part of each game; the hand-solved games have no
tied prices at all.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from controls import BLIND_REWARD, RewardBlind
from toy import bids_frame, emergency_at, toy_point

from lfm_abm.errors import InputError
from lfm_abm.learning import ActionGrid, make_learner
from lfm_abm.learning.base import Learner, random_argmax
from lfm_abm.learning.feedback import reward_scale
from lfm_abm.learning.games import (
    MAX_PROFILES,
    deviation_gains,
    joint_optimum,
    payoff_table,
    play,
    profit_gain,
    pure_nash,
)
from lfm_abm.market.bids import validate_bids
from lfm_abm.market.designs import parse_design
from lfm_abm.market.params import MarketParams
from lfm_abm.market.stages import clear_stage
from lfm_abm.network.needs import NeedLimits

MARKUPS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
#: The markups, then the cap action (bid the reservation price): 7 actions.
GRID = ActionGrid(markups=MARKUPS)
#: The markups alone: 6 actions, no bid at exactly the reservation price.
NO_CAP = ActionGrid(markups=MARKUPS, cap_action=False)
SEEDS = range(5)
#: The learned profile is the modal action of each player over the last fifth of the run.
TAIL = 0.2
def make_player(spec: dict, grid: ActionGrid) -> Learner:
    """A registry learner; {"blind": spec} wraps the learner `spec` describes in
    `RewardBlind`."""
    if "blind" in spec:
        return RewardBlind(make_learner(spec["blind"], grid))
    return make_learner(spec, grid)


#: The two controls: uniform play, and a learner locked into an arbitrary action.
CONTROLS = [{"kind": "random"}, {"blind": {"kind": "roth-erev"}}]


class MarketGame:
    """Suppliers of P_down at bus 1 relieving a 2 MW need, cleared pay-as-bid.

    Player i bids its whole capacity at cost_i x (1 + markup of its action), or at the
    reservation price for the cap action; profit = payment - cost x awarded MWh (1 h
    period). The DSO pays the accepted bids, plus VOLL for emergency action: curtailment
    is priced at VOLL here, an outside option dearer than every admitted offer, as in the
    games' published settings. Clearing results are cached per profile.
    """

    NEED = 2.0  # MW: the line is 1 MVA over its limit, 0.5 MVA relief per MW at bus 1

    def __init__(self, costs: tuple[float, ...], capacities: tuple[float, ...],
                 reservation: float, grid: ActionGrid = GRID) -> None:
        self.costs = np.array(costs)
        self.capacities = np.array(capacities)
        self.reservation = reservation
        self.grid = grid
        self.n_actions = [len(grid)] * len(costs)
        # One offer each, in period 0, of 1 h: the reward unit is cost x capacity.
        self.scales = [reward_scale([c], [q], [1.0], [0])
                       for c, q in zip(costs, capacities, strict=True)]
        self.params = MarketParams(reservation_price=reservation,
                                   curtailment_price=MarketParams().voll)
        self.points = [toy_point(line_mva=11.0, dline_dp=(0.5, 0.0))]
        self.outcome = functools.cache(self._clear)

    def prices(self, profile: tuple[int, ...]) -> np.ndarray:
        markups = np.array([self.grid.markup(a) for a in profile])
        capped = np.isinf(markups)
        return np.where(capped, self.reservation,
                        self.costs * (1.0 + np.where(capped, 0.0, markups)))

    def _clear(self, profile: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, float]:
        prices = self.prices(profile)
        bids = validate_bids(bids_frame([(f"s{i}", 1, 0, "P_down", q, p) for i, (q, p)
                                         in enumerate(zip(self.capacities, prices, strict=True))]))
        result = clear_stage(self.points, bids, parse_design("CM_P").stages[0], NeedLimits(),
                             self.params, emergency=emergency_at({1: 5.0}))
        awarded, payment = np.zeros(len(prices)), np.zeros(len(prices))
        awarded[result.lp.bid_index] = result.settled.awarded.to_numpy()
        payment[result.lp.bid_index] = result.settled.payment.to_numpy()
        dso = payment.sum() + self.params.voll * result.emergency_mwh
        return payment - self.costs * awarded, awarded / self.capacities, float(dso)

    def profits(self, profile: tuple[int, ...]) -> np.ndarray:
        return self.outcome(tuple(profile))[0]

    def shares(self, profile: tuple[int, ...]) -> np.ndarray:
        return self.outcome(tuple(profile))[1]

    def dso_payment(self, profile: tuple[int, ...]) -> float:
        return self.outcome(tuple(profile))[2]

    def play(self, spec: dict, rounds: int, seed: int) -> np.ndarray:
        learners = [make_player(spec, self.grid) for _ in self.costs]
        return play(learners, self.profits, self.shares, self.scales, rounds,
                    np.random.default_rng(seed))


def modal_profile(history: np.ndarray, rng: np.random.Generator) -> tuple[int, ...]:
    """Each player's most frequent action over the tail; equally frequent ones by `rng`."""
    tail = history[-int(TAIL * len(history)):]
    return tuple(random_argmax(np.bincount(column), rng) for column in tail.T)


#: (a) Both pivotal, and one must learn what the other does. A: 80 EUR/MWh, 1.6 MW; B:
#: 50 EUR/MWh, 1.5 MW; the need of 2 MW needs A for 0.5 MW and B for 0.4 MW. No cap
#: action; reservation 300: A's prices 80, 120, 160, 240 are admitted (400, 720 are
#: not), B's 50, 75, 100, 150, 250 (not 450); no price of A is one of B's, so no ties.
#: The cheaper bid gets its capacity, the dearer the rest. A's markup 2 (240) is strictly
#: dominant: against B's 50..150 it sells A's 0.5 MW residual for 80 EUR, where 160
#: earns at most 0.5 x 80 = 40 and undercutting B's 150 at 120 1.6 x 40 = 64; against
#: B's 250 or B's inadmissible 450 it sells 1.6 MW for 256 EUR, twice what 160 earns.
#: B's best reply to 240 (and to 160) is undercutting it at 150 (markup 2, 1.5 x 100 =
#: 150 EUR) rather than taking the residual 0.4 MW at 250 (80 EUR); to A's 80, 120 or an
#: inadmissible bid, and to uniform play by A, it is 250 (markup 4). B has no dominant
#: action and must learn that A bids 240. Unique equilibrium (3, 3), profits (80, 150).
PIVOTAL = MarketGame((80.0, 50.0), (1.6, 1.5), reservation=300.0, grid=NO_CAP)
#: (b) Three identical suppliers (50 EUR/MWh, 2 MW each) for a 2 MW need, with the cap
#: action (400): the cheapest bid takes the whole need (a tie goes to the last listed), so
#: a loser gains by undercutting any accepted price above 75 = 1.5 x cost with a lower
#: markup that still earns. No player has a dominant action. 47 of the 343 profiles are
#: equilibria, most of them with two bids at cost; bidding at cost, or at markup 8 (450,
#: not admitted), never earns and is weakly dominated by markup 0.5. The 9 equilibria in
#: undominated actions have s2, who wins ties, at 0.5 and one other bid at 0.5 too: the
#: DSO pays 1.5 x cost.
BERTRAND = MarketGame((50.0, 50.0, 50.0), (2.0, 2.0, 2.0), reservation=400.0)
#: (c) A: 40 EUR/MWh, 1 MW (cannot meet the need alone); B: 110 EUR/MWh, 2 MW (can). No
#: cap action; reservation 200: A's prices 40, 60, 80, 120, 200 are admitted, B's only
#: 110 and 165. If A is cheaper both get 1 MW, else B takes 2 MW. B's markup 0.5 (165) is
#: strictly dominant (55 or 110 EUR, else 0); A's best reply is its highest price below
#: 165, 120 (markup 2, 80 EUR; 200 would lose the award). Unique equilibrium (3, 1),
#: profits (80, 55). Joint optimum (4, 2): A alone at 200 (160 EUR), B priced out. A's
#: best reply to uniform play by B is 200 (markup 4): A must learn what B does.
ASYMMETRIC = MarketGame((40.0, 110.0), (1.0, 2.0), reservation=200.0, grid=NO_CAP)

#: Largest deviation gain (EUR per round) for a learned profile to count as a Nash
#: equilibrium; a profile that is not one offers at least 40 EUR (PIVOTAL, ASYMMETRIC)
#: or 50 EUR (BERTRAND) to some player.
NASH_EPS = 1.0


def weakly_dominated(table: np.ndarray) -> list[set[int]]:
    """Each player's actions that another of its actions weakly dominates.

    b dominates a when b earns at least as much as a against every profile of the
    others and more against some (`table` from `payoff_table`).
    """
    dominated = []
    for player in range(table.shape[-1]):
        own = np.moveaxis(table[..., player], player, 0).reshape(table.shape[player], -1)
        dominated.append({a for a, b in itertools.permutations(range(len(own)), 2)
                          if np.all(own[b] >= own[a] - 1e-6) and np.any(own[b] > own[a] + 1e-6)})
    return dominated


@functools.cache
def dominated_actions(game: MarketGame) -> list[set[int]]:
    return weakly_dominated(payoff_table(game.n_actions, game.profits))


def spec_id(value: object) -> str:
    if isinstance(value, bool):
        return "learns" if value else "fails"
    if isinstance(value, dict):
        if "blind" in value:
            return "control-blind-" + spec_id(value["blind"])
        name = "-".join(str(v) for v in value.values())
        return "control-" + name if value in CONTROLS else name
    return str(value)


def nash_hits(game: MarketGame, spec: dict, rounds: int) -> list[bool]:
    """Per seed: is the learned (modal) profile an equilibrium in undominated actions?

    Equilibrium: no player gains more than `NASH_EPS` by deviating alone. Undominated: no
    player's action is weakly dominated (the usual refinement of Bertrand games on a
    price grid). It leaves out BERTRAND's equilibria with a bid at cost or above the
    reservation price, actions that never earn: their players are indifferent among
    many actions, so a learner that learnt nothing lands there by chance (38 of the 343
    profiles). PIVOTAL's and ASYMMETRIC's only equilibria are undominated.
    """
    dominated = dominated_actions(game)
    hits = []
    for seed in SEEDS:
        profile = modal_profile(game.play(spec, rounds, seed), np.random.default_rng(seed))
        stable = deviation_gains(profile, game.n_actions, game.profits).max() <= NASH_EPS
        hits.append(stable and not any(a in dominated[i] for i, a in enumerate(profile)))
    return hits


def assert_learns(hits: list[bool], learns: bool) -> None:
    """A learner passes in >= 4 of the 5 seeds; a control fails in >= 4 of them."""
    if learns:
        assert sum(hits) >= 4, hits
    else:
        assert sum(hits) <= 1, hits


# --- the harness on textbook games ------------------------------------------------------


def table_game(table: dict[tuple[int, ...], tuple[float, ...]]):
    return lambda profile: np.array(table[tuple(profile)], dtype=float)


#: Prisoner's dilemma, action 0 = cooperate, 1 = defect.
DILEMMA = table_game({(0, 0): (3, 3), (0, 1): (0, 5), (1, 0): (5, 0), (1, 1): (1, 1)})


def test_prisoners_dilemma():
    assert pure_nash([2, 2], DILEMMA) == [(1, 1)]
    assert joint_optimum([2, 2], DILEMMA) == (0, 0)
    assert deviation_gains((0, 0), [2, 2], DILEMMA).tolist() == [2.0, 2.0]
    assert deviation_gains((1, 1), [2, 2], DILEMMA).tolist() == [0.0, 0.0]
    assert deviation_gains((0, 1), [2, 2], DILEMMA).tolist() == [1.0, 0.0]


def test_matching_pennies_has_no_pure_equilibrium():
    pennies = table_game({(0, 0): (1, -1), (0, 1): (-1, 1), (1, 0): (-1, 1), (1, 1): (1, -1)})
    assert pure_nash([2, 2], pennies) == []


def test_equilibria_come_lowest_joint_profit_first():
    coordination = table_game({(0, 0): (2, 2), (0, 1): (0, 0), (1, 0): (0, 0), (1, 1): (1, 1)})
    assert pure_nash([2, 2], coordination) == [(1, 1), (0, 0)]


def test_pure_nash_of_a_three_player_game_matches_brute_force():
    rng = np.random.default_rng(0)
    payoffs = rng.integers(0, 4, size=(2, 3, 2, 3)).astype(float)
    game = lambda profile: payoffs[tuple(profile)]  # noqa: E731
    expected = []
    for profile in itertools.product(range(2), range(3), range(2)):
        gains = deviation_gains(profile, [2, 3, 2], game)
        if gains.max() <= 0:
            expected.append(profile)
    assert sorted(pure_nash([2, 3, 2], game)) == expected
    assert expected  # the seed gives a game with equilibria, so the check has teeth


def test_deviation_gains_call_the_oracle_once_per_alternative():
    calls = []

    def oracle(profile):
        calls.append(profile)
        return np.array([float(sum(profile)), 0.0, 0.0])

    gains = deviation_gains((1, 0, 1), [3, 4, 2], oracle)
    assert len(calls) == 1 + 2 + 3 + 1 == len(set(calls))
    assert gains.tolist() == [1.0, 0.0, 0.0]
    calls.clear()
    deviation_gains((1, 0, 1), [3, 4, 2], oracle, current=np.array([2.0, 0.0, 0.0]))
    assert len(calls) == 2 + 3 + 1 and (1, 0, 1) not in calls


def test_bad_games_are_refused():
    with pytest.raises(InputError) as err:
        pure_nash([1000, 1000], DILEMMA)  # refused before any oracle call
    assert err.value.field == "n_actions"
    assert str(MAX_PROFILES) in str(err.value)
    with pytest.raises(InputError) as err:
        deviation_gains((0, 2), [2, 2], DILEMMA)
    assert err.value.field == "profile"
    with pytest.raises(InputError) as err:
        joint_optimum([2, 0], DILEMMA)
    assert err.value.field == "n_actions"


def test_profit_gain_is_zero_at_nash_and_one_at_the_joint_optimum():
    assert profit_gain(2.0, 2.0, 6.0) == 0.0
    assert profit_gain(6.0, 2.0, 6.0) == 1.0
    assert profit_gain(3.0, 2.0, 6.0) == 0.25
    assert profit_gain(1.0, 2.0, 6.0) == -0.25
    assert np.isnan(profit_gain(2.0, 2.0, 2.0))


def test_play_caches_the_oracle_and_checks_its_input():
    calls = []

    def oracle(profile):
        calls.append(profile)
        return DILEMMA(profile)

    two = ActionGrid(markups=(0, 1), cap_action=False)
    history = play([make_learner({"kind": "epsilon-greedy"}, two) for _ in range(2)], oracle,
                   lambda p: np.ones(2), [5.0, 5.0], 200, np.random.default_rng(0))
    assert history.shape == (200, 2)
    assert sorted(calls) == sorted({tuple(int(a) for a in row) for row in history})
    learners = [make_learner({"kind": "truthful"}, GRID)]
    for scales, rounds, field in (([1.0, 1.0], 10, "scales"), ([-1.0], 10, "scales"),
                                  ([1.0], 0, "rounds")):
        with pytest.raises(InputError) as err:
            play(learners, DILEMMA, DILEMMA, scales, rounds, np.random.default_rng(0))
        assert err.value.field == field


def test_modal_profile_breaks_ties_at_random():
    history = np.array([[0, 2], [1, 2], [0, 3], [1, 3]] * 5)  # each column tied 50:50
    profiles = {modal_profile(history, np.random.default_rng(seed)) for seed in range(20)}
    assert profiles == {(0, 2), (0, 3), (1, 2), (1, 3)}
    # Only the tail counts: the last fifth of 5 rounds is the last round.
    assert modal_profile(np.array([[0, 0]] * 4 + [[1, 0]]), np.random.default_rng(0)) == (1, 0)


def test_blind_learner_learns_nothing_from_profit():
    rewarded, blind = (make_player(spec, GRID) for spec in ({"kind": "roth-erev"},
                                                           {"blind": {"kind": "roth-erev"}}))
    reference = make_player({"kind": "roth-erev"}, GRID)
    for learner, reward in ((rewarded, 5.0), (blind, 5.0), (reference, BLIND_REWARD)):
        learner.update(3, reward)
    assert rewarded.preferences()[3] > blind.preferences()[3]
    assert blind.preferences().tolist() == reference.preferences().tolist()
    assert blind.probabilities().tolist() == reference.probabilities().tolist()


# --- market games: equilibria by enumeration --------------------------------------------


def test_market_game_prices_the_cap_action_at_the_reservation_price():
    assert GRID.markup(6) == np.inf
    assert BERTRAND.prices((0, 1, 6)).tolist() == [50.0, 75.0, 400.0]
    assert BERTRAND.profits((6, 6, 6)).sum() == pytest.approx(2.0 * 350.0)
    assert BERTRAND.scales == [100.0, 100.0, 100.0]  # cost x capacity: one period's offer
    # Markup 8 (450) is above the reservation price: not admitted, VOLL for the need.
    assert BERTRAND.profits((5, 5, 5)).tolist() == [0.0, 0.0, 0.0]
    assert BERTRAND.dso_payment((5, 5, 5)) == pytest.approx(2.0 * 1000.0)


def test_exact_ties_go_where_the_lp_puts_them():
    # Three bids that can each cover the need: the last listed takes it all.
    assert BERTRAND.profits((1, 1, 1)).tolist() == pytest.approx([0.0, 0.0, 50.0])
    assert BERTRAND.profits((1, 1, 2)).tolist() == pytest.approx([0.0, 50.0, 0.0])
    # Two that cannot: the first listed is filled first.
    assert DUOPOLY.shares((14, 14)).tolist() == pytest.approx([1.0, 2.0 / 3.0])


def best_replies(payoffs: np.ndarray) -> list[int]:
    """Every action of highest payoff (an argmax that shows its ties)."""
    return np.flatnonzero(payoffs >= payoffs.max() - 1e-9).tolist()


def test_pivotal_duopoly_has_the_hand_solved_equilibrium():
    assert pure_nash(PIVOTAL.n_actions, PIVOTAL.profits) == [(3, 3)]
    assert not any(3 in dominated for dominated in dominated_actions(PIVOTAL))
    assert PIVOTAL.profits((3, 3)) == pytest.approx([0.5 * 160.0, 1.5 * 100.0])
    table = payoff_table(PIVOTAL.n_actions, PIVOTAL.profits)
    a, b = table[..., 0], table[..., 1]
    assert all(a[3, j] > a[i, j] for i in range(6) for j in range(6) if i != 3)
    # B's best reply depends on A's action: markup 2 against A's 160 or 240, else 4
    # (250), which is also its best reply to uniform play by A.
    assert [best_replies(row) for row in b] == [[4], [4], [3], [3], [4], [4]]
    assert best_replies(b.mean(axis=0)) == [4]
    assert PIVOTAL.profits((3, 4)) == pytest.approx([1.6 * 160.0, 0.4 * 200.0])


def test_asymmetric_game_has_the_hand_solved_equilibrium():
    assert pure_nash(ASYMMETRIC.n_actions, ASYMMETRIC.profits) == [(3, 1)]
    dominated = dominated_actions(ASYMMETRIC)
    assert 3 not in dominated[0] and 1 not in dominated[1]
    assert ASYMMETRIC.profits((3, 1)) == pytest.approx([80.0, 55.0])
    assert ASYMMETRIC.shares((3, 1)) == pytest.approx([1.0, 0.5])
    optimum = joint_optimum(ASYMMETRIC.n_actions, ASYMMETRIC.profits)
    assert optimum == (4, 2)
    assert ASYMMETRIC.profits(optimum) == pytest.approx([160.0, 0.0])
    nash, collusive = 135.0, 160.0
    assert profit_gain(ASYMMETRIC.profits((3, 1)).sum(), nash, collusive) == pytest.approx(0)
    a = payoff_table(ASYMMETRIC.n_actions, ASYMMETRIC.profits)[..., 0]
    assert best_replies(a.mean(axis=1)) == [4]  # A's best reply to uniform play by B


def test_every_bertrand_equilibrium_pays_near_cost():
    equilibria = pure_nash(BERTRAND.n_actions, BERTRAND.profits)
    assert (0, 0, 0) in equilibria and (1, 1, 1) in equilibria and len(equilibria) == 47
    assert max(accepted_markup(BERTRAND, profile) for profile in equilibria) == 0.5
    table = payoff_table(BERTRAND.n_actions, BERTRAND.profits)
    assert table.sum(axis=-1).max() == pytest.approx(2.0 * 350.0)  # at the cap
    for player in range(3):  # nobody has a dominant action
        own = np.moveaxis(table[..., player], player, 0).reshape(7, -1)
        best = own >= own.max(axis=0) - 1e-6
        assert not best.all(axis=1).any()
    # At cost and above the reservation price nothing is earned: weakly dominated.
    assert dominated_actions(BERTRAND) == [{0, 5}] * 3
    undominated = [p for p in equilibria if not {0, 5} & set(p)]
    assert sorted(undominated) == [(1, 1, 1), (1, 2, 1), (1, 3, 1), (1, 4, 1), (1, 6, 1),
                                   (2, 1, 1), (3, 1, 1), (4, 1, 1), (6, 1, 1)]
    assert {accepted_markup(BERTRAND, p) for p in undominated} == {0.5}


def accepted_markup(game: MarketGame, profile: tuple[int, ...]) -> float:
    """Markup of the accepted energy, volume-weighted over the suppliers.

    Infinite if nothing is accepted: the DSO then pays VOLL for emergency action.
    """
    energy = game.shares(profile) * game.capacities
    if energy.sum() == 0:
        return float("inf")
    markups = (game.prices(profile) - game.costs) / game.costs
    return float(energy @ markups / energy.sum())


# --- market games: what learners learn --------------------------------------------------
#
# Criterion (`nash_hits`): the learned profile (each player's modal action over the last
# fifth of the run, ties at random) is an equilibrium of the enumerated game in
# undominated actions. Counts are of the seeds in which it is, over seeds 0-4
# (asserted) and 0-19 (measured), 2000 rounds.


def roth_erev_kept(grid: ActionGrid) -> dict:
    """Roth-Erev with experimentation = (N - 1) x recency (0.1): nothing is forgotten.

    Each action not chosen gets back exactly what recency takes from it, so the
    propensities of actions not played are kept, and the chosen one tracks
    (1 - experimentation) / recency x its recent reward: choice is proportional to what
    each action earned when last tried. With the defaults (spill 0.2 / (N - 1) below
    recency 0.1) actions not played fade and an early profitable price locks in: in
    BERTRAND the bid that wins ties locks into markup 0.5 while the others, who can earn
    nothing against it, stay uniform (1 of 5 seeds, 6 of 20). N = 6: 0.5; N = 7: 0.6.
    """
    return {"kind": "roth-erev", "experimentation": round((len(grid) - 1) * 0.1, 12)}


def learner_runs(*specs: dict, rounds: int = 2000) -> list[tuple[dict, int, bool]]:
    return [(spec, rounds, True) for spec in specs] + [(c, rounds, False) for c in CONTROLS]


# Seeds 0-4 / 0-19: epsilon-greedy 5/20, ucb1 5/20, exp3 5/20, roth-erev (kept) 5/20,
# q-learning 5/19; random 0/1, blind Roth-Erev 0/0. Default Roth-Erev 5/19. Other blind
# learners: epsilon-greedy 1/1, ucb1 0/2, exp3 0/0, q-learning 0/1.
PIVOTAL_RUNS = learner_runs({"kind": "epsilon-greedy"}, {"kind": "ucb1"}, {"kind": "exp3"},
                            roth_erev_kept(NO_CAP), {"kind": "q-learning"})


@pytest.mark.parametrize(("spec", "rounds", "learns"), PIVOTAL_RUNS, ids=spec_id)
def test_pivotal_suppliers_learn_the_equilibrium(spec, rounds, learns):
    assert_learns(nash_hits(PIVOTAL, spec, rounds), learns)


# Seeds 0-4 / 0-19: epsilon-greedy 5/20, ucb1 5/19, exp3 5/20, roth-erev (kept) 5/20,
# q-learning 4/19 (seed 2: the tie winner stays at markup 0.5 where 1 pays it 50 EUR
# more); random 0/0, blind Roth-Erev 1/2. Default Roth-Erev 1/6. A profile drawn at
# random passes with probability 9/343 = 2.6 % (any equilibrium: 47/343 = 14 %, which
# let the controls pass in 1-2 of 5 seeds); other blind learners: epsilon-greedy 0/0,
# ucb1 0/0, exp3 0/2, q-learning 0/0.
BERTRAND_RUNS = learner_runs({"kind": "epsilon-greedy"}, {"kind": "ucb1"}, {"kind": "exp3"},
                             roth_erev_kept(GRID), {"kind": "q-learning"})


@pytest.mark.parametrize(("spec", "rounds", "learns"), BERTRAND_RUNS, ids=spec_id)
def test_competition_drives_learned_prices_to_an_equilibrium(spec, rounds, learns):
    assert_learns(nash_hits(BERTRAND, spec, rounds), learns)


# Seeds 0-4 / 0-19: epsilon-greedy 5/20, ucb1 5/20, exp3 5/20, roth-erev (kept) 5/20,
# q-learning 5/20; random 0/0, blind Roth-Erev 0/0. Default Roth-Erev 4/18. Other
# blind learners 0/0 to 0/1. Truthful bidding (0, 0) has eps 55 EUR.
ASYMMETRIC_RUNS = learner_runs({"kind": "epsilon-greedy"}, {"kind": "ucb1"}, {"kind": "exp3"},
                               roth_erev_kept(NO_CAP), {"kind": "q-learning"})


@pytest.mark.parametrize(("spec", "rounds", "learns"), ASYMMETRIC_RUNS, ids=spec_id)
def test_asymmetric_game_learners_end_at_the_equilibrium(spec, rounds, learns):
    assert_learns(nash_hits(ASYMMETRIC, spec, rounds), learns)


def test_q_learning_observes_the_award_share():
    learners = [make_learner({"kind": "q-learning"}, NO_CAP) for _ in range(2)]
    play(learners, PIVOTAL.profits, PIVOTAL.shares, PIVOTAL.scales, 300,
         np.random.default_rng(0))
    # Cheaper of the two: all of its capacity (state 2); dearer: the rest, part of it
    # (state 1); a bid above the reservation price wins nothing (state 0).
    for learner in learners:
        assert set(learner.table) == {0, 1, 2}


# --- a game whose only equilibrium is mixed ---------------------------------------------
#
# Symmetric pay-as-bid duopoly with capacity constraints under a price cap (Fabra, von
# der Fehr & Harbord 2006, Designing electricity auctions, RAND J. Econ. 37(1),
# discriminatory auction): capacity k each, cost c, need D with k < D < 2k (each is
# needed for D - k), reservation price P. The cheaper bid is filled (k), the dearer gets
# D - k. There is no pure equilibrium: at equal prices a supplier gains by undercutting,
# and below c + (P - c)(D - k) / k the residual demand at P pays more. In the unique
# equilibrium each supplier earns the residual-monopoly profit (P - c)(D - k), bidding
# on [c + (P - c)(D - k) / k, P] with
#     F(p) = ((p - c) k - (P - c)(D - k)) / ((p - c)(2k - D)),
# and the DSO's expected payment is c D + 2 (P - c)(D - k).

C, P, K, D = 50.0, 150.0, 1.2, 2.0
#: Prices 50, 55, ..., 150: markup 2.0 is the reservation price itself (no cap action).
FINE = ActionGrid(markups=tuple(round(0.1 * i, 1) for i in range(21)), cap_action=False)
#: With VOLL (1000) above P the DSO takes every admitted bid before emergency action.
DUOPOLY = MarketGame((C, C), (K, K), reservation=P, grid=FINE)
EQ_PROFIT = (P - C) * (D - K)  # 80 EUR per supplier per round
EQ_PAYMENT = C * D + 2.0 * EQ_PROFIT  # 260 EUR per round
EQ_LOW = C + (P - C) * (D - K) / K  # 116.7 EUR/MWh: the lowest equilibrium bid
#: Uniform play over 50..150 pays c D + (P - c)(2D - k) / 3 = 193 EUR: far from 260.
#: (With k = 0.8 D = 1.6 it would pay exactly the equilibrium payment, and a check of
#: the payment alone could not tell uniform play from equilibrium play.)


def equilibrium_cdf(prices: np.ndarray) -> np.ndarray:
    p = np.maximum(prices, EQ_LOW)
    return ((p - C) * K - (P - C) * (D - K)) / ((p - C) * (2 * K - D))


@functools.cache
def duopoly_tables() -> tuple[np.ndarray, np.ndarray]:
    """Profits (21, 21, 2) and DSO payment (21, 21) of every profile of the duopoly."""
    profits = payoff_table(DUOPOLY.n_actions, DUOPOLY.profits)
    payment = np.array([[DUOPOLY.dso_payment((a, b)) for b in range(21)] for a in range(21)])
    return profits, payment


def interval_equilibrium(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A mixed equilibrium of a two-player game whose supports are runs of actions.

    Support enumeration restricted to equal-size intervals of action indices: each
    player mixes so that the other is indifferent over its support, and nothing outside
    pays more.
    """
    a, b = table[..., 0], table[..., 1]
    n = len(a)

    def indifferent(payoff: np.ndarray) -> tuple[np.ndarray, float] | None:
        m = len(payoff)
        system = np.block([[payoff, -np.ones((m, 1))], [np.ones((1, m)), np.zeros((1, 1))]])
        try:
            solution = np.linalg.solve(system, np.r_[np.zeros(m), 1.0])
        except np.linalg.LinAlgError:
            return None
        return (solution[:m], solution[m]) if solution[:m].min() >= -1e-12 else None

    for size in range(1, n + 1):
        for lo_a, lo_b in itertools.product(range(n - size + 1), repeat=2):
            rows, cols = np.arange(lo_a, lo_a + size), np.arange(lo_b, lo_b + size)
            found_y = indifferent(a[np.ix_(rows, cols)])
            found_x = indifferent(b[np.ix_(rows, cols)].T)
            if found_y is None or found_x is None:
                continue
            x, y = np.zeros(n), np.zeros(n)
            x[rows], y[cols] = found_x[0], found_y[0]
            if (a @ y).max() <= found_y[1] + 1e-7 and (x @ b).max() <= found_x[1] + 1e-7:
                return x, y
    raise AssertionError("no equilibrium on intervals")


def mixed_gains(table: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each player's best gain (EUR) from one fixed action against the other's mix."""
    a, b = table[..., 0], table[..., 1]
    return np.array([(a @ y).max() - x @ a @ y, (x @ b).max() - x @ b @ y])


def test_duopoly_has_only_a_mixed_equilibrium_near_the_closed_form():
    assert pure_nash(DUOPOLY.n_actions, DUOPOLY.profits) == []
    profits, payment = duopoly_tables()
    # Every pure profile has a deviation worth at least 16 EUR: what `MIXED_EPS` is below.
    pure_eps = [deviation_gains(p, DUOPOLY.n_actions, DUOPOLY.profits).max()
                for p in itertools.product(range(21), repeat=2)]
    assert min(pure_eps) == pytest.approx(16.0)
    assert DUOPOLY.dso_payment((0, 20)) == pytest.approx(C * K + P * (D - K))
    assert payment.mean() == pytest.approx(193.0, abs=0.1)  # uniform play
    # The discrete game (5 EUR steps, exact ties to supplier 0) has an equilibrium on
    # 120..150, the grid's part of [116.7, 150], paying 264 EUR: 1.5 % above the closed form.
    x, y = interval_equilibrium(profits)
    prices = C + 5.0 * np.arange(21)
    assert prices[x > 0].tolist() == prices[y > 0].tolist() == list(range(120, 155, 5))
    assert x @ payment @ y == pytest.approx(264.0)
    assert [x @ profits[..., i] @ y for i in (0, 1)] == pytest.approx([84.0, EQ_PROFIT])
    # Supplier 0 (who wins exact ties) mixes by F at the grid prices; supplier 1 close to it.
    assert np.cumsum(x) == pytest.approx(equilibrium_cdf(prices))
    assert np.abs(np.cumsum(y) - equilibrium_cdf(prices)).max() < 0.06
    assert mixed_gains(profits, x, y).max() == pytest.approx(0.0, abs=1e-7)


#: Tolerance of the tail's mean DSO payment around c D + 2 (P - c)(D - k) = 260 EUR: 5 %
#: (13 EUR). The discrete game's own equilibrium pays 264; over 20 seeds EXP3 pays
#: 253-270 (mean 260.7, sd 4.2), UCB1 262-265 (263.5, sd 0.8). Uniform play pays 193; a
#: locked-in profile pays 1.2 x its lower price + 0.8 x its higher, from 100 to 300.
PAYMENT_TOL = 0.05 * EQ_PAYMENT
#: Largest gain (EUR) from one fixed bid against the other supplier's tail bids for the
#: tail to count as equilibrium play: below 16 EUR, the least any pure profile offers,
#: so a learner locked into one profile fails this whatever it pays.
MIXED_EPS = 15.0
#: Learners whose play approaches the mixed equilibrium, 5000 rounds each, defaults.
#: EXP3 is the one built for co-learning opponents. Its gamma is both learning rate and
#: uniform exploration: at 0.1 a tenth of its bids spread over all of 50..150, off the
#: equilibrium support, which costs eps 7-15 EUR over 20 seeds (8-13 in seeds 0-4);
#: gamma 0.05 halves it (4-9 EUR, payment 258-271). UCB1 settles on the equilibrium mix
#: (eps 3-5 EUR). Measured and left out (20 seeds): epsilon-greedy and Q-learning cycle
#: around the equilibrium, their mean payment within 13 EUR in 18 and 16 seeds, but
#: their tails are not the equilibrium mix (eps 10-30 EUR: both checks in 3 and 5
#: seeds); Roth-Erev locks into one profile (payment in 8 seeds, eps 16-34 EUR: none).
MIXED_RUNS = [({"kind": "exp3"}, 5000, True), ({"kind": "ucb1"}, 5000, True),
              *[(control, 5000, False) for control in CONTROLS]]


@pytest.mark.parametrize(("spec", "rounds", "learns"), MIXED_RUNS, ids=spec_id)
def test_duopoly_learners_pay_what_the_mixed_equilibrium_pays(spec, rounds, learns):
    # Seeds 0-4 / 0-19, payment within 13 EUR of 260 | eps <= 15 EUR: exp3 5/20 | 5/20,
    # ucb1 5/20 | 5/20; random 0/0 | 0/0, blind Roth-Erev 0/2 | 0/0 (pays 112-290).
    # Other blind learners: 0/0 to 0/1 | 0/0.
    profits, payment = duopoly_tables()
    paid, mixed = [], []
    for seed in SEEDS:
        tail = DUOPOLY.play(spec, rounds, seed)[-int(TAIL * rounds):]
        paid.append(abs(payment[tail[:, 0], tail[:, 1]].mean() - EQ_PAYMENT) <= PAYMENT_TOL)
        x, y = (np.bincount(column, minlength=21) / len(tail) for column in tail.T)
        mixed.append(mixed_gains(profits, x, y).max() <= MIXED_EPS)
    # Each check on its own must fail for the controls.
    assert_learns([p and m for p, m in zip(paid, mixed, strict=True)], learns)
    if not learns:
        assert_learns(paid, False)
        assert_learns(mixed, False)
