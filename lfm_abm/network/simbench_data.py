"""SimBench nets and their yearly profiles, loaded once per process and shared.

Both the grid builder (`grids.py`) and the scenario profiles (`scenarios.py`) need the
original SimBench net; keeping it here lets neither module import the other.
"""

from __future__ import annotations

import functools

import pandapower as pp


@functools.lru_cache(maxsize=4)
def simbench_net(code: str) -> pp.pandapowerNet:
    """The SimBench net as published (shared within the process: never modify it)."""
    import simbench

    return simbench.get_simbench_net(code)


@functools.lru_cache(maxsize=4)
def simbench_profiles(code: str) -> dict:
    """Absolute 15-min profiles (MW/MVAr per element) of a SimBench net, computed once."""
    import simbench

    return simbench.get_absolute_values(simbench_net(code), profiles_instead_of_study_cases=True)
