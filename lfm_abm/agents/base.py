"""The Mesa agent base of the project's agents: ids that do not keep a model alive.

Mesa 3.3 counts agent ids per model in a class attribute, `Agent._ids`, a defaultdict
keyed by the model: every model ever created stays referenced, with all it holds (its
LPs, nets, records), for the life of the process (mesa#3179, fixed after 3.3). A worker
running a study's runs one after another grew by ~75 MB a run and a 288-run study ran
out of memory. Here the counters are keyed weakly: a finished model is freed.
"""

from __future__ import annotations

import itertools
import weakref

import mesa


class _IdCounters(weakref.WeakKeyDictionary):
    """Agent id counters per model, a fresh one on first use, held without the model."""

    def __getitem__(self, model: mesa.Model) -> itertools.count:
        try:
            return super().__getitem__(model)
        except KeyError:
            counter = itertools.count(1)
            self[model] = counter
            return counter


class Agent(mesa.Agent):
    """A Mesa agent whose model can be garbage-collected once nothing else holds it."""

    _ids = _IdCounters()  # shared by every subclass: ids stay unique within a model
