"""Asset physics: what each flexible asset can offer in each period, and at what true cost.

Quantities are MW (P) or MVAr (Q) per period in the injection convention of the market
(P_up = more injection or less consumption). True costs are the owner's private
activation costs in EUR/MWh or EUR/MVArh (lost feed-in revenue, discomfort,
degradation) and never change with bidding strategy.

* pv: curtail up to the output it has (P_down); reactive power within the inverter
  circle S = oversize x rated PV, coupled to the P it keeps through a device (the
  market's capability polygon); no Q at night unless `q_at_night`.
* ev: reduce charging down to zero (P_up) any time it charges; add charging up to the
  chargers' limit (P_down) and give Q from V2G-capable chargers only while the fleet
  is plugged in (`window`). The fleet is one device of S = charger_mw.
* flexible_load: shed up to its consumption (P_up) or add up to `increase` x it.
* storage: a new battery idle at zero: charge or discharge up to power_mw, Q within
  the same circle (one device).
* generator: reduce output (P_down), raise it to its rating (P_up; dispatchable units
  only, not wind), Q within the rating.
Energy limits across periods (EV energy needs, battery state of charge) are not
modelled: each period is a separate product, as in the clearing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lfm_abm.agents.inventory import GridInventory

OFFER_COLUMNS = ["asset", "bus", "period", "product", "capacity", "cost", "device_id"]
#: Capacities below this (MW/MVAr) are not worth a bid.
MIN_CAPACITY = 1e-4


@dataclass(frozen=True)
class AssetSpec:
    """One flexible asset: its kind, bus, share of what the grid has there, and costs."""

    kind: str
    bus: int
    cost: Mapping[str, float]
    share: float = 1.0
    params: Mapping[str, object] = field(default_factory=dict)

    def param(self, name: str) -> object:
        """A kind-specific parameter, falling back to its documented default."""
        return self.params.get(name, ASSET_KINDS[self.kind]["params"][name][0])


#: Per kind: the products it may offer and its parameters (default, meaning).
ASSET_KINDS: dict[str, dict] = {
    "pv": {"products": ("P_down", "Q_up", "Q_down"), "needs": "pv", "params": {
        "oversize": (1.1, "inverter apparent power / rated PV power, >= 1"),
        "q_at_night": (False, "offer Q when the PV produces nothing"),
    }},
    "ev": {"products": ("P_up", "P_down", "Q_up", "Q_down"), "needs": "ev", "params": {
        "charger_mw": (None, "total charger power of the fleet share, MW (required)"),
        "window": ((17, 7), "[first, last] hour the fleet is plugged in (wraps midnight)"),
        "v2g_share": (0.0, "share of chargers that can give reactive power, 0..1"),
    }},
    "flexible_load": {"products": ("P_up", "P_down"), "needs": "load", "params": {
        "increase": (0.2, "extra consumption it can add, as a share of its load, >= 0"),
    }},
    "storage": {"products": ("P_up", "P_down", "Q_up", "Q_down"), "needs": None, "params": {
        "power_mw": (None, "converter power of the new battery, MW (required)"),
    }},
    "generator": {"products": ("P_up", "P_down", "Q_up", "Q_down"), "needs": "generator",
                  "params": {}},
}


def in_window(hours: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """True for hours inside [first, last], wrapping past midnight when first > last."""
    first, last = window
    if first <= last:
        return (hours >= first) & (hours <= last)
    return (hours >= first) | (hours <= last)


def _capacities(asset: AssetSpec, inventory: GridInventory, hours: np.ndarray
                ) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """Capacity per product (per period) and the device state (P0, Q0, S) if coupled."""
    n = len(hours)
    zero = np.zeros(n)
    if asset.kind == "pv":
        p0 = asset.share * inventory.at("pv", asset.bus)
        s = float(asset.param("oversize")) * asset.share * inventory.rated("pv", asset.bus)
        s = np.maximum(s, p0)  # a profile may exceed the nameplate; never below output
        q_on = (p0 > MIN_CAPACITY) | bool(asset.param("q_at_night"))
        q = np.where(q_on, s, 0.0)
        return {"P_down": p0, "Q_up": q, "Q_down": q}, (p0, zero, np.where(q_on, s, p0))
    if asset.kind == "ev":
        charging = asset.share * inventory.at("ev", asset.bus)
        charger = float(asset.param("charger_mw"))
        plugged = in_window(hours, tuple(asset.param("window")))
        q = np.where(plugged, float(asset.param("v2g_share")) * charger, 0.0)
        s = np.full(n, max(charger, 0.0))
        s = np.maximum(s, charging)
        return ({"P_up": charging, "P_down": np.where(plugged, np.clip(charger - charging, 0, None),
                                                      0.0), "Q_up": q, "Q_down": q},
                (-charging, zero, s))
    if asset.kind == "flexible_load":
        load = asset.share * inventory.at("load", asset.bus)
        return {"P_up": load, "P_down": float(asset.param("increase")) * load}, None
    if asset.kind == "storage":
        power = np.full(n, float(asset.param("power_mw")))
        return {"P_up": power, "P_down": power, "Q_up": power, "Q_down": power}, (
            zero, zero, power)
    if asset.kind == "generator":
        output = asset.share * inventory.at("generator", asset.bus)
        rating = np.maximum(asset.share * inventory.rated("generator", asset.bus), output)
        # Only dispatchable units (CHP, biomass, hydro) can raise output; wind cannot.
        raisable = asset.share * (inventory.rated("dispatchable", asset.bus)
                                  - inventory.at("dispatchable", asset.bus))
        return ({"P_up": np.clip(raisable, 0, None), "P_down": output, "Q_up": rating,
                 "Q_down": rating}, (output, zero, rating))
    raise ValueError(f"unknown asset kind {asset.kind!r}")


def asset_offers(asset: AssetSpec, inventory: GridInventory, hours: np.ndarray,
                 periods: np.ndarray, device_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Offers (one row per period and product with capacity) and the device rows.

    `hours` are the hour-of-day of every scenario period; only `periods` (those with
    published needs) get offers. Products without a true cost are not offered.
    """
    capacities, device = _capacities(asset, inventory, hours)
    frames = []
    for product, capacity in capacities.items():
        if product not in asset.cost:
            continue
        keep = periods[capacity[periods] > MIN_CAPACITY]
        if len(keep) == 0:
            continue
        coupled = device is not None and (product[0] == "Q" or any(
            p[0] == "Q" for p in asset.cost))
        frames.append(pd.DataFrame({
            "bus": asset.bus, "period": keep, "product": product,
            "capacity": capacity[keep], "cost": float(asset.cost[product]),
            "device_id": device_id if coupled else "",
        }))
    offers = (pd.concat(frames, ignore_index=True) if frames
              else pd.DataFrame(columns=OFFER_COLUMNS[1:]))
    devices = pd.DataFrame(columns=["device_id", "period", "p_mw", "q_mvar", "s_mva"])
    if device is not None and (offers.device_id != "").any():
        p0, q0, s = device
        devices = pd.DataFrame({"device_id": device_id, "period": periods, "p_mw": p0[periods],
                                "q_mvar": q0[periods], "s_mva": s[periods]})
    return offers, devices


def check_cost(cost: float) -> bool:
    """True costs must be finite and positive: a markup over zero would not be a price."""
    return isinstance(cost, int | float) and math.isfinite(cost) and cost > 0
