"""Flexibility service providers as Mesa agents: choose markups, learn from profit.

An FSP keeps one learner per product family it offers and the design buys (P and Q
markets differ in competition, so their markups are learnt apart). Each round it picks an action per
family (markup over true cost, share of capacity withheld) from the shared action grid,
and afterwards learns from that family's profit = payment - true activation cost.

The reward is profit divided by a scale fixed for the run, the true cost of one period
of the family's full offer on the first market day, floored at 0: stationary, as UCB1's
confidence bounds and Roth-Erev's propensities assume, of order 1 for ordinary profits,
and independent of VOLL and the reservation price. The Q-learning state is the family's
award share last round (0 nothing, 1 part, 2 all of its offered energy) or every
group's action last round. `learning.feedback` defines both, for FSPs and validation
games alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mesa
import numpy as np

from lfm_abm.agents.base import Agent
from lfm_abm.agents.book import OfferBook
from lfm_abm.agents.population import FSPSpec
from lfm_abm.learning import LEARNERS, ActionGrid, Learner, make_learner
from lfm_abm.learning.feedback import INITIAL_STATE, learn_round, reward_scale
from lfm_abm.learning.simple import Fixed


class FSP(Agent):
    """A flexibility service provider with assets at one or more buses."""

    def __init__(self, model: mesa.Model, spec: FSPSpec, grid: ActionGrid,
                 learner_spec: dict | None = None,
                 admitted: frozenset[str] = frozenset({"P", "Q"})) -> None:
        super().__init__(model)
        families = [family for family in spec.families if family in admitted]
        self.spec = spec
        self.grid = grid
        spec_learner = learner_spec if learner_spec is not None else dict(spec.learner)
        source = model.population_source
        self.learners: dict[str, Learner] = {
            family: make_learner(spec_learner, grid, source=f"{source}: fsp {spec.id}")
            for family in families
        }
        self.actions: dict[str, int] = {}
        self.scales: dict[str, float] = {}  # set by `set_reward_scales` before learning
        self.state = dict.fromkeys(families, INITIAL_STATE)
        self._learner_spec = spec_learner
        # day-ahead positions (`enter_dayahead`): a learner per block, or fixed shares
        self.position_grid: ActionGrid | None = None
        self.position_learners: list[Learner] = []
        self.position_actions = np.zeros(0, dtype=int)
        self.fixed_shares: np.ndarray | None = None

    @property
    def fsp_id(self) -> str:
        """The FSP's id from the population file."""
        return self.spec.id

    def choose(self) -> dict[str, int]:
        """Pick this round's action for every product family (model's seeded RNG)."""
        self.actions = {family: learner.choose(self.model.rng, self.state[family])
                        for family, learner in self.learners.items()}
        return self.actions

    def set_reward_scales(self, book: OfferBook) -> None:
        """Fix each family's reward scale: the true cost of one period of its full offer."""
        offers = book.offers
        for family in self.learners:
            mine = ((offers.provider_id == self.fsp_id) & (offers.family == family)).to_numpy()
            self.scales[family] = reward_scale(offers.cost.to_numpy()[mine],
                                               offers.capacity.to_numpy()[mine],
                                               book.hours[mine], offers.period.to_numpy()[mine])

    def enter_dayahead(self, positions: tuple[float, ...], blocks: int,
                       truthful: Callable[[], np.ndarray]) -> None:
        """Learn a day-ahead position per block, with the FSP's own kind of learner.

        A fixed learner (truthful, a fixed markup) takes the day-ahead-truthful shares
        `truthful()`: what the day-ahead price alone makes best (`agents.positions`).
        """
        self.position_grid = ActionGrid(markups=(0.0,), cap_action=False, positions=positions)
        if issubclass(LEARNERS[str(self._learner_spec["kind"])], Fixed):
            # its markup need not be on the positions' grid: it only bids
            self.fixed_shares = np.asarray(truthful(), dtype=float)
            return
        source = f"{self.model.population_source}: fsp {self.fsp_id}"
        self.position_learners = [make_learner(self._learner_spec, self.position_grid,
                                               source=source) for _ in range(blocks)]

    def choose_positions(self) -> np.ndarray:
        """This round's share per block (model's seeded RNG), signed as `market.dayahead`."""
        if self.fixed_shares is not None:
            return self.fixed_shares
        assert self.position_grid is not None, "enter_dayahead first"
        self.position_actions = np.array([learner.choose(self.model.rng, INITIAL_STATE)
                                          for learner in self.position_learners])
        return np.asarray(self.position_grid.positions)[self.position_actions]

    def learn_positions(self, profit: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """Update each block's learner with the FSP's profit in that block; the rewards.

        A position can lose money, so each block's profit is shifted by the most its
        positions can lose (`bounds`, Erev & Roth's minimum-payoff subtraction) and
        measured in units of that bound (or of the FSP's reward scale, if larger).
        """
        scale = sum(self.scales.values())
        rewards = np.zeros(len(self.position_learners))
        for block, learner in enumerate(self.position_learners):
            unit = max(float(bounds[block]), scale)
            rewards[block], _ = learn_round(learner, int(self.position_actions[block]),
                                            INITIAL_STATE, profit[block] + bounds[block],
                                            unit, 0.0)
        return rewards

    def greedy(self, family: str) -> int:
        """The family's greedy action in its current state (ties at random)."""
        return int(self.learners[family].greedy(self.model.rng, self.state[family]))

    def learn(self, family: str, profit: float, share: float,
              profile: Sequence[int]) -> tuple[float, int, float]:
        """Update the family's learner with this round's profit and award share.

        `share` is the awarded part of the family's offered energy (0 if it offered none),
        `profile` every group's action this round (the state of learners that observe it).
        Returns the reward used, the learner's greedy action afterwards (ties at random)
        and the normalised entropy of its choice distribution (1 = uniform, 0 = decided).
        """
        learner = self.learners[family]
        reward, state = learn_round(learner, self.actions[family], self.state[family], profit,
                                    self.scales[family], share, profile)
        self.state[family] = state
        return reward, self.greedy(family), normalised_entropy(learner.probabilities(state))


def normalised_entropy(p: np.ndarray) -> float:
    """Entropy of a choice distribution over its maximum: 1 uniform, 0 one action."""
    if len(p) < 2:
        return 0.0
    positive = p[p > 0]
    return float(-(positive * np.log(positive)).sum() / np.log(len(p)))


class PVInverter(FSP):
    """Curtails PV output (P_down) and gives or absorbs Q within its inverter circle."""


class EVFleet(FSP):
    """Shifts charging within its plug-in window (P_up/P_down) and Q from V2G chargers."""


class DERAggregator(FSP):
    """A portfolio of flexible loads, batteries and generators across several buses."""


AGENT_CLASSES: dict[str, type[FSP]] = {
    "pv_inverter": PVInverter,
    "ev_fleet": EVFleet,
    "der_aggregator": DERAggregator,
}
