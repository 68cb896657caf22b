"""Flexibility service providers as Mesa agents: choose markups, learn from profit.

An FSP keeps one learner per product family it offers and the design buys (P and Q
markets differ in competition, so their markups are learnt apart). Each round it picks an action per
family (markup over true cost, share of capacity withheld) from the shared action grid,
and afterwards learns from that family's profit = payment - true activation cost.

Rewards are profits divided by the largest profit the family has earned so far, so they
lie in [0, 1] for every learner (EXP3 and UCB1 need bounded rewards) and adapt to each
FSP's own market size. The Q-learning state is (did the family win anything last round,
which third of the action grid its last action was in).
"""

from __future__ import annotations

import mesa
import numpy as np

from lfm_abm.agents.population import FSPSpec
from lfm_abm.learning import ActionGrid, Learner, make_learner


class FSP(mesa.Agent):
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
        self.best_profit = dict.fromkeys(families, 0.0)
        self.state = dict.fromkeys(families, (False, 0))

    @property
    def fsp_id(self) -> str:
        """The FSP's id from the population file."""
        return self.spec.id

    def choose(self) -> dict[str, int]:
        """Pick this round's action for every product family (model's seeded RNG)."""
        self.actions = {family: learner.choose(self.model.rng, self.state[family])
                        for family, learner in self.learners.items()}
        return self.actions

    def learn(self, family: str, profit: float, won: bool) -> tuple[float, int, float]:
        """Update the family's learner with this round's profit.

        Returns the reward used, the learner's greedy action afterwards and the
        normalised entropy of its choice distribution (1 = uniform, 0 = decided).
        """
        action = self.actions[family]
        self.best_profit[family] = max(self.best_profit[family], profit)
        best = self.best_profit[family]
        reward = float(np.clip(profit / best, 0.0, 1.0)) if best > 1e-9 else 0.0
        tercile = min(2, 3 * action // max(len(self.grid), 1))
        next_state = (won, tercile)
        learner = self.learners[family]
        learner.update(action, reward, self.state[family], next_state)
        self.state[family] = next_state
        p = learner.probabilities(next_state)
        p = p[p > 0]
        entropy = float(-(p * np.log(p)).sum() / np.log(len(self.grid))) if len(self.grid) > 1 \
            else 0.0
        return reward, int(learner.greedy(next_state)), entropy


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
