"""Normal-form games for checking what learners learn against equilibria known in advance.

A game is a payoff oracle `profits(profile) -> profit per player` (EUR) over profiles of
action indices, with `n_actions[i]` actions for player i. In tests the oracle clears a
small market; in a run it can re-clear the round's market with one provider's bid
changed. The functions here measure a profile against the game's benchmarks:

* regret: player i's best gain from a unilateral deviation,
  g_i = max_a pi_i(a, s_-i) - pi_i(s) >= 0; the profile s is an eps-Nash equilibrium
  with eps = max_i g_i (a Nash equilibrium when eps = 0);
* played regret: the same for the strategies actually played, each player's best
  fixed action against the others' recorded play over sampled rounds (`played_regret`);
  the play is an eps coarse correlated equilibrium with eps = max_i g_i;
* the pure Nash equilibria and the joint optimum (collusive benchmark), by enumeration;
* Calvano, Calzolari, Denicolo & Pastorello (2020), Artificial intelligence, algorithmic
  pricing, and collusion, AER 110(10): profit gain Delta = (pi - pi_N) / (pi_M - pi_N),
  0 at the competitive Nash profit and 1 at the joint optimum.

`play` trains registry learners in the repeated game exactly as FSP agents learn in the
model (`learning.feedback`), and returns what they played.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from lfm_abm.errors import InputError
from lfm_abm.learning.base import Learner
from lfm_abm.learning.feedback import INITIAL_STATE, learn_round

Profile = tuple[int, ...]
Oracle = Callable[[Profile], np.ndarray]
#: Largest game `pure_nash` and `joint_optimum` enumerate: each profile is one oracle
#: call (a market clearing, milliseconds each).
MAX_PROFILES = 100_000


def deviation_gains(profile: Sequence[int], n_actions: Sequence[int], profits: Oracle,
                    current: ArrayLike | None = None) -> np.ndarray:
    """Each player's best profit gain from changing only its own action (EUR, >= 0).

    Calls `profits` once per (player, alternative action), and once more at `profile`
    unless its profits are passed as `current` (e.g. from the round's own clearing).
    `current` must come from the same clearing rule as the oracle: a warm-started LP can
    split exactly tied bids differently, and the difference would show as a gain.
    The largest gain is the eps of the eps-Nash equilibrium `profile` is.
    """
    base, table = deviation_table(profile, n_actions, profits, current)
    return np.maximum(np.nanmax(table, axis=1) - base, 0.0)


def deviation_table(profile: Sequence[int], n_actions: Sequence[int], profits: Oracle,
                    current: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Profits at `profile`, and of each player for each action of its own (others fixed).

    Returns (profit per player, array players x max actions; NaN where a player has
    fewer actions). One oracle call per (player, alternative action), plus one at
    `profile` unless its profits are given as `current`.
    """
    sizes = _check_sizes(n_actions)
    profile = _check_profile(profile, sizes)
    base = np.asarray(profits(profile) if current is None else current, dtype=float)
    table = np.full((len(profile), max(sizes)), np.nan)
    for player, own in enumerate(profile):
        for action in range(sizes[player]):
            deviated = (*profile[:player], action, *profile[player + 1:])
            table[player, action] = base[player] if action == own else \
                float(np.asarray(profits(deviated))[player])
    return base, table


def played_regret(bases: np.ndarray, tables: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regret of empirical mixed strategies from sampled rounds' deviation tables.

    `bases` (rounds x players): each player's profit in round t; `tables` (rounds x
    players x actions): its profit had it played each action in round t, the others as
    recorded. Returns per player the mean profit, the regret g_i = max(0, max_a mean_t
    [table - base]) (the best fixed action's gain against what the others played) and
    the standard error of that mean over the rounds (NaN for one round).
    """
    bases, tables = np.asarray(bases, dtype=float), np.asarray(tables, dtype=float)
    gain = tables - bases[:, :, None]
    mean_gain = np.nanmean(gain, axis=0)  # players x actions
    best = np.nanargmax(mean_gain, axis=1)
    players = np.arange(bases.shape[1])
    chosen = gain[:, players, best]
    se = (chosen.std(axis=0, ddof=1) / np.sqrt(len(bases)) if len(bases) > 1
          else np.full(len(players), np.nan))
    return bases.mean(axis=0), np.maximum(mean_gain[players, best], 0.0), se


def payoff_table(n_actions: Sequence[int], profits: Oracle) -> np.ndarray:
    """Profits of every profile: array of shape (*n_actions, players), one call each."""
    n_actions = _check_sizes(n_actions)
    size = math.prod(n_actions)
    if size > MAX_PROFILES:
        raise InputError(f"{size} profiles are too many to enumerate", field="n_actions",
                         allowed=[f"games of at most {MAX_PROFILES} profiles"])
    table = np.empty((*n_actions, len(n_actions)))
    for profile in itertools.product(*map(range, n_actions)):
        table[profile] = profits(profile)
    return table


def pure_nash(n_actions: Sequence[int], profits: Oracle,
              tolerance: float = 1e-6) -> list[Profile]:
    """All pure Nash equilibria, lowest joint profit first (ties in enumeration order).

    A profile is one when no player gains more than `tolerance` EUR by deviating alone
    (clearing LPs are exact only to solver precision). The first is the competitive
    benchmark of `profit_gain`. Enumerates every profile: at most `MAX_PROFILES`.
    """
    table = payoff_table(n_actions, profits)
    stable = np.ones(table.shape[:-1], dtype=bool)
    for player in range(table.shape[-1]):
        own = table[..., player]
        stable &= own >= own.max(axis=player, keepdims=True) - tolerance
    equilibria = [tuple(int(a) for a in index) for index in np.argwhere(stable)]
    return sorted(equilibria, key=lambda profile: table[profile].sum())


def joint_optimum(n_actions: Sequence[int], profits: Oracle) -> Profile:
    """The profile of highest summed profit (first in enumeration order among ties)."""
    table = payoff_table(n_actions, profits)
    index = np.unravel_index(np.argmax(table.sum(axis=-1)), table.shape[:-1])
    return tuple(int(a) for a in index)


def profit_gain(pi: float, pi_nash: float, pi_coll: float) -> float:
    """Calvano et al.'s Delta = (pi - pi_nash) / (pi_coll - pi_nash); NaN if they coincide.

    Pass profits on one footing: summed over players (or per player on average) for the
    learnt outcome pi, the Nash equilibrium and the joint optimum. With several pure Nash
    equilibria use the one of lowest joint profit (`pure_nash(...)[0]`), the competitive
    benchmark, so Delta > 0 measures profit above what competition guarantees.
    """
    if pi_coll == pi_nash:
        return float("nan")
    return (pi - pi_nash) / (pi_coll - pi_nash)


def play(learners: Sequence[Learner], profits: Oracle, shares: Oracle, scales: ArrayLike,
         rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Actions of `learners` over `rounds` of the repeated game: array (rounds, players).

    Each round every learner chooses (in order, from `rng`), then learns from its
    profit over its reward scale (EUR) and from its award share `shares(profile)` or the
    profile (the Q-learning state), as FSPs do in the model. Oracle results are cached
    per profile.
    """
    scales = np.asarray(scales, dtype=float)
    if scales.shape != (len(learners),) or not np.all(np.isfinite(scales) & (scales >= 0)):
        raise InputError(f"got {scales.tolist()!r}", field="scales",
                         allowed=[f"{len(learners)} finite numbers >= 0, one per learner"])
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise InputError(f"invalid value {rounds!r}", field="rounds",
                         allowed=["an integer >= 1"])
    outcomes: dict[Profile, tuple[np.ndarray, np.ndarray]] = {}
    states = [INITIAL_STATE] * len(learners)
    history = np.empty((rounds, len(learners)), dtype=int)
    for t in range(rounds):
        profile = tuple(learner.choose(rng, state) for learner, state in zip(
            learners, states, strict=True))
        if profile not in outcomes:
            outcomes[profile] = (np.asarray(profits(profile), dtype=float),
                                 np.asarray(shares(profile), dtype=float))
        profit, share = outcomes[profile]
        for i, learner in enumerate(learners):
            _, states[i] = learn_round(learner, profile[i], states[i], profit[i], scales[i],
                                       share[i], profile)
        history[t] = profile
    return history


def _check_sizes(n_actions: Sequence[int]) -> list[int]:
    sizes = list(n_actions)
    if not sizes or any(isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1
                        for n in sizes):
        raise InputError(f"got {sizes!r}", field="n_actions",
                         allowed=["a non-empty list of integers >= 1, one per player"])
    return [int(n) for n in sizes]


def _check_profile(profile: Sequence[int], sizes: list[int]) -> Profile:
    actions = tuple(int(a) for a in profile)
    if len(actions) != len(sizes) or not all(0 <= a < n for a, n in zip(actions, sizes,
                                                                         strict=True)):
        raise InputError(f"profile {actions} does not fit n_actions {sizes}",
                         field="profile", allowed=["one action index 0..n-1 per player"])
    return actions
