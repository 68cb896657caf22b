"""Variant Roth-Erev reinforcement learning, the usual learner of electricity-market ABMs."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Annotated, Literal

import numpy as np

from lfm_abm.errors import InputError
from lfm_abm.learning.actions import ActionGrid
from lfm_abm.learning.base import Learner
from lfm_abm.schema import Field, Float, settings

# Floor on propensities: after thousands of unrewarded rounds they decay towards 0, and
# proportional choice needs a positive sum. Far below any value that carries information.
_TINY = np.finfo(float).tiny


class RothErev(Learner):
    """Propensities reinforced by reward, forgotten with recency, spread by experimentation.

    Variant of Nicolaisen, Petrov & Tesfatsion (2001), Market power and efficiency in a
    computational electricity market with discriminatory double-auction pricing, IEEE
    Trans. Evol. Comput. 5(5). For every action j after action k earned reward r:
    q_j <- (1 - recency) q_j + E_j, with E_k = r (1 - experimentation) and
    E_j = q_j experimentation / (N - 1) otherwise. Unlike the original Roth-Erev rule, a
    zero reward still changes the propensities, so unprofitable actions lose ground.
    """

    KIND = "roth-erev"

    @settings("learner")
    class Params:
        """The parameters of Roth-Erev learning.

        recency: how fast old propensities are forgotten.
        experimentation: share of reinforcement spilled to the actions not chosen. The
            value (N - 1) / N is rejected (it depends on the grid, so the learner checks
            it): under the original Roth-Erev rule it gives every action the same
            reinforcement r / N, so choice never learns from reward; the variant keeps
            that restriction, as Nicolaisen, Petrov & Tesfatsion do. With a single action
            there is nothing to spill to and any value is accepted.
        initial_propensity: q0 of every action, in reward units; larger values make early
            rewards count less. Erev & Roth (1998) set q0 = s(1) X / N with strength
            s(1) = 9 and X the player's mean payoff: 20 is that for the sellers whose
            learning moves costs most, pivotal ones (X of about 25 units with N = 11); a
            much smaller q0 lets their first large reward lock them in early.
        choice: "proportional" (p_j = q_j / sum q) or "gibbs" (p_j proportional to
            exp(q_j / temperature)).
        temperature: Gibbs temperature; lower values concentrate choice on the best action.
        """

        recency: Annotated[Float, Field(ge=0, lt=1)] = 0.1
        experimentation: Annotated[Float, Field(ge=0, lt=1)] = 0.2
        initial_propensity: Annotated[Float, Field(gt=0)] = 20.0
        choice: Literal["proportional", "gibbs"] = "proportional"
        temperature: Annotated[Float, Field(gt=0)] = 1.0

    def __init__(self, grid: ActionGrid, /, **params: object) -> None:
        super().__init__(grid, **params)
        n = self.n_actions
        if n > 1 and math.isclose(self.experimentation, (n - 1) / n, rel_tol=0, abs_tol=1e-12):
            raise InputError(
                f"experimentation (N - 1) / N = {(n - 1) / n:g} with N = {n} actions is not "
                "allowed: the Roth-Erev update would reinforce every action equally, so the "
                "learner stops learning",
                field="learner.experimentation",
                allowed=[f"a number in [0, 1) other than {(n - 1) / n:g}"])
        self.propensities = np.full(n, self.initial_propensity)

    def update(self, action: int, reward: float, state: Hashable | None = None,
               next_state: Hashable | None = None) -> None:
        """Forget, reinforce the chosen action, spill experimentation to the others."""
        reward = self._reward(action, reward)
        q = self.propensities
        spill = q * (self.experimentation / (self.n_actions - 1)) if self.n_actions > 1 else 0.0
        updated = (1.0 - self.recency) * q + spill
        updated[action] = (1.0 - self.recency) * q[action] + reward * (1.0 - self.experimentation)
        self.propensities = np.maximum(updated, _TINY)

    def probabilities(self, state: Hashable | None = None) -> np.ndarray:
        """Proportional or Gibbs choice over the propensities."""
        q = self.propensities
        # Proportional choice ignores scale and Gibbs choice ignores shifts, so measuring
        # from the maximum first keeps the sums finite whatever the propensities.
        if self.choice == "proportional":
            weights = q / q.max()
        else:
            weights = np.exp((q - q.max()) / self.temperature)
        return weights / weights.sum()

    def preferences(self, state: Hashable | None = None) -> np.ndarray:
        """Propensities: the greedy action has the highest."""
        return self.propensities
