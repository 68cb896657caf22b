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
