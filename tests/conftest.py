"""Shared fixtures: grids are expensive to build, so build each once per session."""

from __future__ import annotations

import copy

import pytest

from lfm_abm.network.grids import load_grid


@pytest.fixture(scope="session")
def _cigre():
    return load_grid("cigre-mv")


@pytest.fixture(scope="session")
def _semiurb():
    return load_grid("simbench-semiurb")


@pytest.fixture
def cigre(_cigre):
    """A fresh copy of the built-in CIGRE MV grid."""
    return copy.deepcopy(_cigre)


@pytest.fixture
def semiurb(_semiurb):
    """A fresh copy of the built-in SimBench semi-urban MV grid."""
    return copy.deepcopy(_semiurb)


@pytest.fixture(scope="session")
def cigre_case():
    """The CIGRE MV default day as a market case (baseline points with sensitivities)."""
    from lfm_abm.market.clearing import MarketCase

    return MarketCase.build("cigre-mv")


def ample_bids(case, quantity=0.5, seed=0, periods=None):
    """Truthful bids of every product at every bidding bus and period (random prices).

    P costs 20-80 EUR/MWh, Q 2-16 EUR/MVArh: enough to solve every need of the day.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for period in periods if periods is not None else range(case.n_periods):
        for bus in case.buses:
            for product in ("P_up", "P_down", "Q_up", "Q_down"):
                price = rng.uniform(20, 80) if product[0] == "P" else rng.uniform(2, 16)
                rows.append({"bid_id": f"{bus}-{period}-{product}", "provider_id": f"fsp{bus}",
                             "bus": int(bus), "period": period, "product": product,
                             "quantity": quantity, "price": float(price)})
    return pd.DataFrame(rows)
