"""Did learners learn? When their play settled, and what earners play in the KPI window.

**Settled play.** The rounds are cut into consecutive blocks of B rounds; f_ik is learner
i's empirical action distribution in block k. A pair of consecutive blocks (k, k + 1)
is *settled* when the learners that earn in it (profit > 0 in some round of either
block) both

* stopped moving: mean over them of TV(f_ik, f_i,k+1) <= `STABLE_TV`, and
* are decided: mean over them of TV(f_ik, uniform) >= `DECIDED_TV` in both blocks,

with TV(f, g) = 1/2 sum_a |f(a) - g(a)| (0 = same, 1 = disjoint). Play settled from the
first block after which every pair is settled. Stability alone cannot tell learning
from noise: uniform random play does not move either (its blocks differ only by
sampling, TV ~0.37 with 11 actions) but it is not decided (TV from uniform ~0.27, at
most ~0.33 for one learner; settled epsilon-greedy with epsilon 0.1: ~0.82). A pair in
which nobody earns has nothing to judge and counts as settled: a provider that never
earns gets reward 0 for every action and drifts forever without mattering to the
market. Neither test reads rewards, so a learner that ignores its reward and locks into
a random action (Roth-Erev and Q-learning do) passes both: `converged` (results.kpis)
therefore also asks that the played strategies be close to best responses when their
regret was measured (`equilibrium.played_regret_table`).

**Window diagnostics** (`learning_diagnostics`) of the learners that earn in the window:
their mean choice entropy, the share of their rounds in which they played their greedy
action (the one they believed best when choosing: the greedy recorded after the previous
round's update), and the share of rounds in which all of them did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lfm_abm.errors import InputError

#: Mean TV between consecutive blocks at or below which play has stopped moving. A
#: settled epsilon-greedy learner (epsilon 0.1, 10 actions) plays its greedy action with
#: probability 0.91 and each other with 0.01: two independent blocks of 25 such draws are
#: at TV 0.10 on average, above 0.3 with probability 7e-4 (less for a mean over several
#: learners). A learner switching its greedy action moves TV to about 0.9.
STABLE_TV = 0.3
#: Mean TV from uniform play at or above which play is decided. Uniform play over 11
#: actions in blocks of 25 rounds: 0.27 on average, 0.33 at most in 4000 blocks of one
#: learner; a settled epsilon-greedy learner 0.82; an even mix of 2 of 11 actions 0.82,
#: of 5 of them 0.55.
DECIDED_TV = 0.5
#: Rounds per block of choice frequencies compared.
BLOCK = 25
#: Converged play must also be near best responses where its regret was measured: the
#: mean share of its best fixed response's profit a learner forgoes at most this.
NEAR_BEST = 0.2
KEYS = ["fsp_id", "family"]


@dataclass(frozen=True)
class BlockCounts:
    """What settling is judged on: each learner's action counts per block of rounds.

    first_rounds[k]: the first round of block k; counts[k, i, a]: how often learner i
    played action a in block k; earns[k, i]: learner i had a profit in block k;
    n_rounds: distinct rounds recorded; any_earner: some learner ever had a profit (also
    in the rounds after the last full block). Built from a whole agents table
    (`block_counts`) or aggregated where the table is stored (`results.lazy`), so a run
    of any length is judged without its table in memory.
    """

    first_rounds: np.ndarray
    counts: np.ndarray
    earns: np.ndarray
    n_rounds: int
    any_earner: bool

    @classmethod
    def empty(cls, n_actions: int) -> BlockCounts:
        """The blocks of a run without agent records: nothing to judge."""
        return cls(np.zeros(0), np.zeros((0, 0, n_actions)), np.zeros((0, 0), bool), 0, False)


def block_counts(agents: pd.DataFrame, n_actions: int, block: int = BLOCK) -> BlockCounts:
    """The blocks of an agents table (columns round, fsp_id, family, action, profit)."""
    _check_block(block)
    if agents.empty:
        return BlockCounts.empty(n_actions)
    rounds = np.sort(agents["round"].unique())
    n_blocks = len(rounds) // block
    position = np.searchsorted(rounds, agents["round"].to_numpy()) // block
    kept = position < n_blocks
    learner = agents.groupby(KEYS, sort=False).ngroup().to_numpy()
    action = agents.action.to_numpy().astype(int)
    check_actions(int(action.max(initial=0)), n_actions)
    counts = np.zeros((n_blocks, learner.max() + 1, n_actions))
    np.add.at(counts, (position[kept], learner[kept], action[kept]), 1.0)
    earns = np.zeros((n_blocks, learner.max() + 1), dtype=bool)
    profit = agents.profit.to_numpy()
    np.logical_or.at(earns, (position[kept], learner[kept]), profit[kept] > 0)
    return BlockCounts(rounds[: n_blocks * block: block], counts, earns, len(rounds),
                       bool((profit > 0).any()))


def check_actions(largest: int, n_actions: int) -> None:
    """An action index must lie on the grid of `n_actions` actions."""
    if largest >= n_actions:
        raise InputError(f"action {largest} outside a grid of {n_actions} actions",
                         field="n_actions", allowed=[f"an integer > {largest}"])


def _blocks(agents: pd.DataFrame | BlockCounts, n_actions: int, block: int) -> BlockCounts:
    return agents if isinstance(agents, BlockCounts) else block_counts(agents, n_actions, block)


def judgeable(agents: pd.DataFrame | BlockCounts, block: int = BLOCK) -> bool:
    """True if settling can be judged: two full blocks and a learner that earns.

    Otherwise `rounds_to_stable` is NaN for want of evidence, not because learning
    never settles (truthful learners under pay-as-bid earn nothing and never move).
    """
    if isinstance(agents, BlockCounts):
        return agents.n_rounds >= 2 * block and agents.any_earner
    return (not agents.empty and agents["round"].nunique() >= 2 * block
            and bool((agents.groupby(KEYS).profit.max() > 0).any()))


def _check_block(block: object) -> None:
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise InputError(f"invalid value {block!r}", field="block",
                         allowed=["an integer >= 1 (rounds)"])


def _check(block: object, threshold: object, decided: object) -> None:
    _check_block(block)
    for name, value in (("threshold", threshold), ("decided", decided)):
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0.0 <= value <= 1.0:
            raise InputError(f"invalid value {value!r}", field=name,
                             allowed=["a number in [0, 1]"])


def settled_pairs(agents: pd.DataFrame | BlockCounts, n_actions: int, block: int = BLOCK,
                  threshold: float = STABLE_TV, decided: float = DECIDED_TV
                  ) -> pd.DataFrame:
    """Per pair of consecutive blocks: first round, moving TV, TV from uniform, settled.

    `agents` has one row per round and learner (columns round, fsp_id, family, action,
    profit), or is its `BlockCounts`; `n_actions` is the size of the action grid
    (uniform play's support). Columns: round (first round of the pair's first block),
    earners, tv, tv_uniform (the smaller of the two blocks'), settled.
    """
    _check(block, threshold, decided)
    columns = ["round", "earners", "tv", "tv_uniform", "settled"]
    blocks = _blocks(agents, n_actions, block)
    n_blocks = len(blocks.first_rounds)
    if n_blocks < 2:
        return pd.DataFrame(columns=columns)
    counts, earns = blocks.counts, blocks.earns
    frequencies = counts / np.maximum(counts.sum(axis=2, keepdims=True), 1.0)
    moving = 0.5 * np.abs(np.diff(frequencies, axis=0)).sum(axis=2)
    from_uniform = 0.5 * np.abs(frequencies - 1.0 / n_actions).sum(axis=2)
    rows = []
    for k in range(n_blocks - 1):
        counted = earns[k] | earns[k + 1]
        if not counted.any():
            rows.append((blocks.first_rounds[k], 0, np.nan, np.nan, True))
            continue
        tv = float(moving[k, counted].mean())
        spread = float(min(from_uniform[k, counted].mean(), from_uniform[k + 1, counted].mean()))
        rows.append((blocks.first_rounds[k], int(counted.sum()), tv, spread,
                     tv <= threshold and spread >= decided))
    return pd.DataFrame(rows, columns=columns)


def rounds_to_stable(agents: pd.DataFrame | BlockCounts, n_actions: int, block: int = BLOCK,
                     threshold: float = STABLE_TV, decided: float = DECIDED_TV) -> float:
    """The first round from which earners' play is settled (see the module docstring).

    Returns the first round of the earliest block from which every later pair of blocks
    is settled. NaN with fewer than two blocks, if no learner ever earns, or if the last
    pair of blocks is not settled (never settled).
    """
    blocks = _blocks(agents, n_actions, block)
    pairs = settled_pairs(blocks, n_actions, block, threshold, decided)
    if pairs.empty or not blocks.any_earner:
        return float("nan")
    unsettled = np.flatnonzero(~pairs.settled.to_numpy(dtype=bool))
    if len(unsettled) == 0:
        return float(pairs["round"].iloc[0])
    first = unsettled[-1] + 1  # pair k compares blocks k and k + 1
    if first == len(pairs):
        return float("nan")
    return float(pairs["round"].iloc[first])


def converged(agents: pd.DataFrame | BlockCounts, n_actions: int, first_in_window: float,
              regret_share: float = float("nan")) -> float:
    """1 if earners' play settled by `first_in_window` and is near best responses, else 0.

    `regret_share`: the played strategies' mean regret share (`played_regret`); NaN
    (not measured) does not count against. NaN where settling cannot be judged.
    """
    blocks = _blocks(agents, n_actions, BLOCK)
    if not judgeable(blocks):
        return float("nan")
    settled = rounds_to_stable(blocks, n_actions) <= first_in_window  # NaN: never
    return float(settled and not regret_share > NEAR_BEST)


def learning_diagnostics(agents: pd.DataFrame, window_rounds: set[int]) -> dict[str, float]:
    """Entropy and greedy play of the learners that earn in the window.

    `agents` covers the whole run (the greedy action a round's choice is compared with
    is the one recorded after the round before), or only the window with that action
    in a column `believed` (a long run's table need not be read whole). NaN where no
    learner earns.
    """
    nan = {"entropy_earners": np.nan, "greedy_share": np.nan, "all_greedy_share": np.nan,
           "earners": 0.0}
    if agents.empty:
        return nan
    believed = (agents.believed if "believed" in agents
                else agents.groupby(KEYS, sort=False).greedy.shift(1))
    window = agents.assign(played_greedy=agents.action == believed)
    window = window[window["round"].isin(window_rounds) & believed.notna()]
    earning = window.groupby(KEYS, sort=False).profit.transform("max") > 0
    earners = window[earning]
    if earners.empty:
        return nan
    return {"entropy_earners": float(earners.entropy.mean()),
            "greedy_share": float(earners.played_greedy.mean()),
            "all_greedy_share": float(earners.groupby("round").played_greedy.all().mean()),
            "earners": float(earners.groupby(KEYS).ngroups)}
