"""Learners by name, and the factory that builds one from a TOML table."""

from __future__ import annotations

from collections.abc import Mapping

from lfm_abm.errors import InputError
from lfm_abm.learning.actions import ActionGrid
from lfm_abm.learning.bandits import EXP3, UCB1, EpsilonGreedy
from lfm_abm.learning.base import Learner
from lfm_abm.learning.qlearning import QLearning
from lfm_abm.learning.roth_erev import RothErev
from lfm_abm.learning.simple import FixedMarkup, Truthful, UniformRandom

LEARNERS: dict[str, type[Learner]] = {
    cls.KIND: cls
    for cls in (Truthful, FixedMarkup, UniformRandom, EpsilonGreedy, UCB1, EXP3, RothErev,
                QLearning)
}


def make_learner(spec: Mapping[str, object], grid: ActionGrid,
                 source: str = "learner") -> Learner:
    """Build the learner a table such as {kind = "roth-erev", recency = 0.1} describes.

    Every input error names the field and what it allows, with `source` as the place.
    """
    if not isinstance(spec, Mapping):
        raise InputError(f"expected a table with a 'kind', got {spec!r}", source=source,
                         field="learner", allowed=list(LEARNERS))
    params = dict(spec)
    kind = params.pop("kind", None)
    if not isinstance(kind, str) or kind not in LEARNERS:
        message = "missing 'kind'" if kind is None else f"unknown learner kind {kind!r}"
        raise InputError(message, source=source, field="learner.kind", allowed=list(LEARNERS))
    try:
        return LEARNERS[kind](grid, **params)
    except InputError as exc:
        raise exc.located(source) from None
