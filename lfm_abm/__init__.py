"""lfm-abm: an agent-based simulator of a DSO's local flexibility market.

Public entry points: `simulate` (run rounds, get per-round records) and `load_results`
(a study's saved results as tidy pandas frames). Heavier pieces live in
`lfm_abm.network`, `lfm_abm.market`, `lfm_abm.agents`, `lfm_abm.learning`,
`lfm_abm.model` and `lfm_abm.study`. They are imported on first use, so that
`lfm-abm --help` stays fast; `help(lfm_abm.simulate)` shows the real function.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load_results", "simulate"]
_HOME = {"simulate": "lfm_abm.model", "load_results": "lfm_abm.results.load"}


def __getattr__(name: str) -> Any:
    """Import a public function from its module on first use (PEP 562)."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'lfm_abm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
