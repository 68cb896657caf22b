"""Pricing and settlement: a registry of rules, each turning a solved stage into payments.

* `pay-as-bid`: an accepted bid is paid its own price.
* `locational` (pay-as-cleared): an accepted bid is paid the uniform locational price of
  its bus, period and product, the same for every bid there: the network rows' duals
  times the product's sensitivities (an LMP restricted to flexibility), capped at the
  DSO's reservation price. Device rows (inverter circle, energy account) are not
  locational and set no price; they only decide which of a device's bids is accepted.
  A device whose accepted bids are together paid less than they cost at their offers
  (possible only where the cap binds, or where one of its coupled bids relieves nothing
  by itself, e.g. a battery's recharge) receives the difference as a make-whole uplift,
  as in an ISO's bid-cost recovery, so no accepted device is paid below its offers.

Sum of payments = DSO procurement cost by construction under every rule.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from lfm_abm.errors import InputError
from lfm_abm.market.engines import LPSolution
from lfm_abm.market.formulation import LinearProgram

#: A rule: (bid prices EUR/MWh, locational prices EUR/MWh, accepted energy MWh, device
#: codes, reservation price) -> (payment, uplift) per bid, EUR.
Rule = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float],
                tuple[np.ndarray, np.ndarray]]


def _pay_as_bid(price: np.ndarray, locational: np.ndarray, energy: np.ndarray,
                device: np.ndarray, reservation: float) -> tuple[np.ndarray, np.ndarray]:
    return price * energy, np.zeros(len(price))


def _locational(price: np.ndarray, locational: np.ndarray, energy: np.ndarray,
                device: np.ndarray, reservation: float) -> tuple[np.ndarray, np.ndarray]:
    cleared = np.minimum(locational, reservation) * energy
    return cleared, make_whole(price * energy - cleared, device)


PRICING_RULES: dict[str, Rule] = {"pay-as-bid": _pay_as_bid, "locational": _locational}


def check_pricing(rule: str, source: str = "pricing") -> str:
    """Return the rule if known, else raise InputError listing the known rules."""
    if rule not in PRICING_RULES:
        raise InputError(f"unknown pricing rule {rule!r}", source=source, field="pricing",
                         allowed=list(PRICING_RULES))
    return rule


def make_whole(shortfall: np.ndarray, device: np.ndarray) -> np.ndarray:
    """Uplift per bid covering its device's net shortfall (EUR, >= 0).

    `shortfall` is cost at offer minus cleared payment per bid, `device` an integer code
    per bid (bids of one device share it). A device's surplus on one bid offsets its
    shortfall on another; what remains is paid to its short bids, pro rata.
    """
    net = np.bincount(device, shortfall, minlength=device.max(initial=-1) + 1)
    short = np.maximum(shortfall, 0.0)
    short_sum = np.bincount(device, short, minlength=len(net))
    owed = np.maximum(net, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(short_sum[device] > 0, short / short_sum[device], 0.0)
    return owed[device] * share


def locational_values(lp: LinearProgram, solution: LPSolution) -> np.ndarray:
    """Locational value of each bid column, EUR/MW over its period: network rows only.

    Bids at one bus, period and product have identical network coefficients, so they get
    the same value: the uniform locational price times the period length.
    """
    y = np.where(lp.is_device_row, 0.0, solution.row_dual)
    return -lp.bid_values(y)


def device_codes(bids: pd.DataFrame) -> np.ndarray:
    """An integer per bid, shared by the bids of one device; a bid without one is alone."""
    codes, names = pd.factorize(bids.device_id.to_numpy(dtype=object))
    alone = bids.device_id.to_numpy(dtype=object) == ""
    codes[alone] = len(names) + np.arange(alone.sum())
    return codes


def settle(lp: LinearProgram, solution: LPSolution, bids: pd.DataFrame, hours: np.ndarray,
           pricing: str, reservation: float) -> pd.DataFrame:
    """Per admitted bid (in LP column order): awarded MW, payment EUR, prices EUR/MWh.

    `bids` are the admitted bids in column order, `hours` their period lengths.
    """
    awarded = solution.x[: lp.n_bids]
    energy = awarded * hours
    locational = locational_values(lp, solution) / hours
    won = energy > 0
    codes = device_codes(bids) if won.any() else np.zeros(len(bids), dtype=int)
    payment, uplift = PRICING_RULES[pricing](bids.price.to_numpy(), locational, energy,
                                             codes, reservation)
    with np.errstate(invalid="ignore", divide="ignore"):
        price_paid = np.where(won, (payment + uplift) / energy, np.nan)
    return pd.DataFrame({
        "awarded": awarded,
        "payment": payment + uplift,
        "uplift": uplift,
        "price_paid": price_paid,
        "locational_price": locational,
    }, index=bids.index)


def locational_prices(lp: LinearProgram, solution: LPSolution) -> pd.DataFrame:
    """Locational price of each product at every PQ bus and period, EUR/MWh (or /MVArh).

    price(k, n, t) = -sum over period-t network rows r of y_r x sensitivity of r to
    product k at bus n, divided by the period length. Zero where nothing binds; periods
    the LP left out (no bid and nothing to fix) have no rows. Uncapped: the locational
    rule pays min(price, reservation price).
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
