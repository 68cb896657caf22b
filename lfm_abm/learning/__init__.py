"""How flexibility providers learn to bid: one interface, several learners, one action grid.

A learner repeatedly chooses an action of the shared `ActionGrid` (a markup over true cost
and a share of capacity withheld), receives a reward in [0, 1] and updates. Keeping every
learner behind `Learner` lets a study swap strategies by name (`make_learner`) and compare
them on the same actions and the same seeded randomness.
"""

from lfm_abm.learning.actions import ActionGrid
from lfm_abm.learning.base import Learner
from lfm_abm.learning.registry import LEARNERS, make_learner

__all__ = ["LEARNERS", "ActionGrid", "Learner", "make_learner"]
