"""lfm-abm: an agent-based simulator of a DSO's local flexibility market.

The public entry point is `simulate`; heavier pieces live in `lfm_abm.network`,
`lfm_abm.market`, `lfm_abm.agents`, `lfm_abm.learning`, `lfm_abm.model` and
`lfm_abm.study`. Imports are lazy so that `lfm-abm --help` stays fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["simulate"]


def simulate(*args: Any, **kwargs: Any):
    """Run market rounds and return per-round records; see `lfm_abm.model.simulate`."""
    from lfm_abm.model import simulate as run

    return run(*args, **kwargs)
