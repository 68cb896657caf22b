"""Pricing and settlement: pay-as-bid, or marginal (locational) prices from the LP duals.

Marginal value of bid b (EUR per MW over its period) = -sum_r y_r A_rb, split into a
locational part (network rows: the dual-weighted sensitivities of the bid's bus and
product) and a device part (the device's own rows: its capability circle, which moves
value between the P and Q products of one device, and its energy account, which moves
value between periods: a battery's discharge is worth what its recharge costs). By LP
optimality an accepted bid's cost never exceeds its marginal value, so under marginal
pricing every awarded bid is paid at least its price. Sum of payments = DSO procurement
cost by construction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.market.engines import LPSolution
from lfm_abm.market.formulation import LinearProgram

PRICING_RULES = ("pay-as-bid", "marginal")


def check_pricing(rule: str, source: str = "pricing") -> str:
    """Return the rule if known, else raise InputError listing the known rules."""
    if rule not in PRICING_RULES:
        raise InputError(f"unknown pricing rule {rule!r}", source=source, field="pricing",
                         allowed=PRICING_RULES)
    return rule


def bid_values(lp: LinearProgram, solution: LPSolution) -> tuple[np.ndarray, np.ndarray]:
    """Locational and device parts of each bid column's marginal value (EUR/MW)."""
    is_cap = lp.is_device_row
    y = solution.row_dual
    locational = -(lp.bid_matrix_t @ np.where(is_cap, 0.0, y))
    capability = -(lp.bid_matrix_t @ np.where(is_cap, y, 0.0))
    return np.asarray(locational).ravel(), np.asarray(capability).ravel()


def settle(lp: LinearProgram, solution: LPSolution, bids: pd.DataFrame, hours: np.ndarray,
           pricing: str) -> pd.DataFrame:
    """Per admitted bid (in LP column order): awarded MW, payment EUR, prices EUR/MWh.

    `bids` are the admitted bids in column order, `hours` their period lengths.
    """
    awarded = solution.x[: lp.n_bids]
    locational, capability = bid_values(lp, solution)
    if pricing == "pay-as-bid":
        payment = bids.price.to_numpy() * hours * awarded
    else:
        payment = (locational + capability) * awarded
    energy = awarded * hours
    with np.errstate(invalid="ignore", divide="ignore"):
        price_paid = np.where(energy > 0, payment / energy, np.nan)
    return pd.DataFrame({
        "awarded": awarded,
        "payment": payment,
        "price_paid": price_paid,
        "value_locational": locational / hours,
        "value_capability": capability / hours,
    }, index=bids.index)


def locational_prices(lp: LinearProgram, solution: LPSolution) -> pd.DataFrame:
    """Marginal value of each product at every PQ bus and period, EUR/MWh (or /MVArh).

    price(k, n, t) = -sum over period-t network rows r of y_r x sensitivity of r to
    product k at bus n, divided by the period length. Zero where nothing binds; periods
    the LP left out (no bid and nothing to fix) have no rows.
    """
    frames = []
    for block in lp.periods:
        y = solution.row_dual[block.rows] if len(block.rows) else np.zeros(0)
        value_p = -(y @ block.coef_p) / block.hours if len(y) else np.zeros(len(block.buses))
        value_q = -(y @ block.coef_q) / block.hours if len(y) else np.zeros(len(block.buses))
        for product, values in (("P_up", value_p), ("P_down", -value_p),
                                ("Q_up", value_q), ("Q_down", -value_q)):
            frames.append(pd.DataFrame({"period": block.period, "bus": block.buses.astype(int),
                                        "product": product, "price": values}))
    if not frames:  # no period where anything could move
        return pd.DataFrame({"period": pd.Series(dtype=int), "bus": pd.Series(dtype=int),
                             "product": pd.Series(dtype=str), "price": pd.Series(dtype=float)})
    return pd.concat(frames, ignore_index=True)
