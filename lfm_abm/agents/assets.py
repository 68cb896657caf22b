"""Asset physics: what each flexible asset can offer in each period, and at what true cost.

Quantities are MW (P) or MVAr (Q) per period in the injection convention of the market
(P_up = more injection or less consumption). True costs are the owner's private
activation costs in EUR/MWh or EUR/MVArh (lost feed-in revenue, discomfort,
degradation) and never change with bidding strategy. Every offer names its asset
(`device_id`), so the market can couple offers of one unit.

* pv: curtail up to the output it has (P_down); reactive power within the inverter
  circle S = oversize x rated PV, coupled to the P it keeps (the market's capability
  polygon); no Q at night unless `q_at_night`.
* ev: while the fleet is plugged in (`window`, wrapping past midnight) it can defer
  charging down to zero (P_up) and recover it later in the same window up to the
  chargers' limit (P_down): an energy account of kind "shift" (`market.energy`) makes
  every MWh deferred come back before the fleet leaves, so it still charges its daily
  energy (the scenario's EV profile). Q from V2G-capable chargers while plugged in.
* flexible_load: shed up to its consumption (P_up) or add up to `increase` x it
  (P_down); with `shift`, shed energy is recovered later the same day (a "shift"
  account over the day), else it is lost and the two products are independent.
* storage: a new battery idle at zero in its baseline: charge (P_down) or discharge
  (P_up) up to power_mw, Q within the same circle. Its state of charge stays in
  [0, energy_mwh] in every period and ends the day at least at soc_final (a "storage"
  account; round-trip `efficiency` split evenly between charging and discharging).
* generator: reduce output (P_down), raise it to its rating (P_up; dispatchable units
  only, not wind), Q within the rating.

Energy-limited assets (storage, EV fleets, shiftable loads) offer P in every period of
their account, not only in periods with published needs: recovering or recharging
elsewhere is what makes their flexibility in the need periods deliverable. Their true
costs price each leg: a battery's P_up and P_down costs each carry half of a cycle's
degradation and losses per MWh; an EV fleet's P_up cost is the discomfort of charging
later and its P_down cost that of the recovery (rebound) it is paid for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Annotated, Literal

import numpy as np
import pandas as pd

from lfm_abm.agents.inventory import GridInventory
from lfm_abm.errors import InputError
from lfm_abm.market.capability import DEVICE_COLUMNS
from lfm_abm.market.energy import empty_accounts, shift_account, storage_account
from lfm_abm.schema import Bool, Field, Float, Int, settings

OFFER_COLUMNS = ["asset", "bus", "period", "product", "capacity", "cost", "device_id",
                 "reverses"]
#: Capacities below this (MW/MVAr) are not worth a bid.
MIN_CAPACITY = 1e-4

#: A share of something (of a bus's resource, of chargers, of a battery's energy).
Share = Annotated[Float, Field(ge=0, le=1)]
#: MW, MWh or a factor on a bus's load; the upper bound catches unit slips (kW as MW).
Size = Annotated[Float, Field(ge=0, le=1e4)]
#: A true cost: a markup over zero would not be a price, so it must be positive.
Cost = Annotated[Float, Field(gt=0)]
Hour = Annotated[Int, Field(ge=0, le=23)]

# The parameters of each asset kind, in the order they are written to a population file.
# Their section is empty: fields are named as they appear in the asset's table.


@settings("")
class PVParams:
    """A PV inverter: the share of the PV at its bus."""

    oversize: Annotated[Float, Field(
        ge=1, le=1e4, description="inverter apparent power / rated PV power")] = 1.1
    q_at_night: Annotated[Bool, Field(
        description="offer Q when the PV produces nothing")] = False


@settings("")
class EVParams:
    """An EV fleet: a share of the EV charging at its bus."""

    charger_mw: Annotated[Size, Field(description="total charger power of the fleet share, MW")]
    window: Annotated[tuple[Hour, ...], Field(
        min_length=2, max_length=2,
        description="[first, last] hour the fleet is plugged in (wraps midnight)")] = (17, 7)
    v2g_share: Annotated[Share, Field(
        description="share of chargers that can give reactive power")] = 0.0


@settings("")
class FlexibleLoadParams:
    """A flexible load: a share of the load at its bus."""

    increase: Annotated[Size, Field(
        description="extra consumption it can add, as a share of its load")] = 0.2
    shift: Annotated[Bool, Field(
        description="shed energy is recovered later the same day (else it is lost)")] = False


@settings("")
class StorageParams:
    """A new battery, idle at zero in the baseline (its share is ignored)."""

    power_mw: Annotated[Size, Field(description="converter power of the battery, MW")]
    energy_mwh: Annotated[Size, Field(description="usable energy of the battery, MWh")]
    soc_initial: Annotated[Share, Field(
        description="state of charge at the start of the day, share of energy")] = 0.5
    soc_final: Annotated[Share | None, Field(
        description="least state of charge at the end of the day, share of energy, "
                    "at most soc_initial (default: soc_initial)")] = None
    efficiency: Annotated[Float, Field(ge=0.5, le=1, description="round-trip efficiency")] = 0.9

    def __post_init__(self) -> None:
        # The battery idles in its baseline, so it cannot end the day fuller than it began.
        if self.soc_final is not None and self.soc_final > self.soc_initial:
            raise InputError(f"invalid value {self.soc_final!r}: above soc_initial "
                             f"({self.soc_initial:g}), and an idle battery cannot end the "
                             "day fuller", field="soc_final",
                             allowed=[f"a number in [0, {self.soc_initial:g}], or none"])


@settings("")
class GeneratorParams:
    """A generator: a share of the generation at its bus; no parameters of its own."""


@settings("cost")
class TrueCost:
    """True costs per product (`market.bids.PRODUCTS`), EUR/MWh or EUR/MVArh.

    A product left out (None) is not offered.
    """

    P_up: Cost | None = None
    P_down: Cost | None = None
    Q_up: Cost | None = None
    Q_down: Cost | None = None


def true_costs(table: Mapping[str, object]) -> dict[str, float]:
    """The costs of a table such as {P_down = 60.0}, checked, in the table's order.

    The order is kept because offers are made in it.
    """
    checked = TrueCost(**table)
    return {product: getattr(checked, product) for product in table}


#: Per kind: the products it may offer, the inventory it needs at its bus, its parameters.
ASSET_KINDS: dict[str, dict] = {
    "pv": {"products": ("P_down", "Q_up", "Q_down"), "needs": "pv", "params": PVParams},
    "ev": {"products": ("P_up", "P_down", "Q_up", "Q_down"), "needs": "ev",
           "params": EVParams},
    "flexible_load": {"products": ("P_up", "P_down"), "needs": "load",
                      "params": FlexibleLoadParams},
    "storage": {"products": ("P_up", "P_down", "Q_up", "Q_down"), "needs": None,
                "params": StorageParams},
    "generator": {"products": ("P_up", "P_down", "Q_up", "Q_down"), "needs": "generator",
                  "params": GeneratorParams},
}


@settings("")
class AssetSpec:
    """One flexible asset: its kind, bus, share of what the grid has there, and costs.

    Costs and the kind's parameters (`ASSET_KINDS[kind]["params"]`) are checked and the
    parameters completed with their defaults whoever builds the spec (a population file,
    the generator, a test), so the physics below reads only checked values.
    """

    kind: Literal["pv", "ev", "flexible_load", "storage", "generator"]
    bus: Int
    cost: Mapping[str, object]
    share: Share = 1.0
    params: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cost", true_costs(self.cost))
        object.__setattr__(self, "params", asdict(ASSET_KINDS[self.kind]["params"](
            **self.params)))

    def param(self, name: str) -> object:
        """A kind-specific parameter (its default if the spec did not set it)."""
        return self.params[name]


def in_window(hours: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """True for hours inside [first, last], wrapping past midnight when first > last."""
    first, last = window
    if first <= last:
        return (hours >= first) & (hours <= last)
    return (hours >= first) | (hours <= last)


@dataclass(frozen=True)
class AssetFlex:
    """What an asset can offer per period and what couples its offers.

    capacity: MW or MVAr per product and period; circle: (P0, Q0, S) per period when
    its P and Q share one inverter; account: its energy account (`market.energy`) when
    its energy is limited, whose periods are also where it offers P.
    """

    capacity: dict[str, np.ndarray]
    circle: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    account: pd.DataFrame | None = None


def _in_day_order(hours: np.ndarray, first: int = 0) -> np.ndarray:
    """Periods sorted by hour counted from `first` (a window that wraps midnight)."""
    return np.argsort((hours - first) % 24, kind="stable")


def _flex(asset: AssetSpec, inventory: GridInventory, hours: np.ndarray,
          device_id: str) -> AssetFlex:
    n = len(hours)
    zero = np.zeros(n)
    if asset.kind == "pv":
        p0 = asset.share * inventory.at("pv", asset.bus)
        s = asset.param("oversize") * asset.share * inventory.rated("pv", asset.bus)
        s = np.maximum(s, p0)  # a profile may exceed the nameplate; never below output
        q_on = (p0 > MIN_CAPACITY) | asset.param("q_at_night")
        q = np.where(q_on, s, 0.0)
        return AssetFlex({"P_down": p0, "Q_up": q, "Q_down": q},
                         (p0, zero, np.where(q_on, s, p0)))
    if asset.kind == "ev":
        charging = asset.share * inventory.at("ev", asset.bus)
        charger = asset.param("charger_mw")
        window = asset.param("window")
        plugged = in_window(hours, window)
        q = np.where(plugged, asset.param("v2g_share") * charger, 0.0)
        s = np.maximum(np.full(n, charger), charging)
        order = _in_day_order(hours, window[0])
        return AssetFlex({"P_up": np.where(plugged, charging, 0.0),
                          "P_down": np.where(plugged, np.clip(charger - charging, 0, None), 0.0),
                          "Q_up": q, "Q_down": q}, (-charging, zero, s),
                         shift_account(device_id, order[plugged[order]]))
    if asset.kind == "flexible_load":
        load = asset.share * inventory.at("load", asset.bus)
        account = (shift_account(device_id, _in_day_order(hours))
                   if asset.param("shift") else None)
        return AssetFlex({"P_up": load, "P_down": asset.param("increase") * load},
                         account=account)
    if asset.kind == "storage":
        power = np.full(n, asset.param("power_mw"))
        energy = asset.param("energy_mwh")
        initial = asset.param("soc_initial")
        final = initial if asset.param("soc_final") is None else asset.param("soc_final")
        account = storage_account(device_id, _in_day_order(hours), energy, initial * energy,
                                  final * energy, asset.param("efficiency"))
        return AssetFlex({"P_up": power, "P_down": power, "Q_up": power, "Q_down": power},
                         (zero, zero, power), account)
    if asset.kind == "generator":
        output = asset.share * inventory.at("generator", asset.bus)
        rating = np.maximum(asset.share * inventory.rated("generator", asset.bus), output)
        # Only dispatchable units (CHP, biomass, hydro) can raise output; wind cannot.
        raisable = asset.share * (inventory.rated("dispatchable", asset.bus)
                                  - inventory.at("dispatchable", asset.bus))
        return AssetFlex({"P_up": np.clip(raisable, 0, None), "P_down": output,
                          "Q_up": rating, "Q_down": rating}, (output, zero, rating))
    raise ValueError(f"unknown asset kind {asset.kind!r}")


#: The product that reverses a day-ahead position taken in each P direction.
REVERSES = {"P_up": "P_down", "P_down": "P_up"}


def _after_position(flex: AssetFlex, asset: AssetSpec, position: np.ndarray,
                    period_hours: float) -> tuple[AssetFlex, dict[str, tuple[np.ndarray, float]]]:
    """The asset's flexibility around its day-ahead schedule, and its reversal offers.

    A position s (MW, + sells) uses s of the P_up capacity (or -s of P_down); the
    opposite product can first undo it: a reversal offer of |s| whose true cost is the
    position's value u = -cost of the position's product (`market.dayahead`), negative
    when undoing saves the provider fuel, wear or lost consumption. The inverter's P
    moves by s; a battery's account bounds move by the charge the schedule moves.
    """
    sold, bought = np.maximum(position, 0.0), np.maximum(-position, 0.0)
    capacity = dict(flex.capacity)
    for product, used in (("P_up", sold), ("P_down", bought)):
        if product in capacity:
            capacity[product] = np.clip(capacity[product] - used, 0.0, None)
    reversal = {REVERSES[product]: (undone, -float(asset.cost[product]))
                for product, undone in (("P_up", sold), ("P_down", bought))
                if product in asset.cost and undone.any()}
    circle = flex.circle
    if circle is not None:
        circle = (circle[0] + position, circle[1], np.maximum(circle[2],
                                                               np.abs(circle[0] + position)))
    account = flex.account
    if account is not None and asset.kind == "storage":
        one_way = math.sqrt(asset.param("efficiency"))
        charge = -position * np.where(position > 0, 1.0 / one_way, one_way) * period_hours
        moved = np.cumsum(charge[account.period.to_numpy()])  # MWh, in the account's order
        account = account.assign(lower_mwh=account.lower_mwh - moved,
                                 upper_mwh=account.upper_mwh - moved)
    return AssetFlex(capacity, circle, account), reversal


def asset_offers(asset: AssetSpec, inventory: GridInventory, hours: np.ndarray,
                 periods: np.ndarray, device_id: str, position: np.ndarray | None = None,
                 period_hours: float = 1.0
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Offers (one row per period and product with capacity), capability and energy rows.

    `hours` are the hour-of-day of every scenario period; `periods` those with published
    needs, where offers are made; an energy-limited asset offers P in every period of
    its account. Products without a true cost are not offered. The capability rows
    (DEVICE_COLUMNS) exist when the asset offers Q, the energy rows (ENERGY_COLUMNS)
    when it offers P from limited energy. `position`: the asset's day-ahead schedule (MW
    per period, `agents.positions`), which its offers start from (`_after_position`).
    """
    flex = _flex(asset, inventory, hours, device_id)
    reversal: dict[str, tuple[np.ndarray, float]] = {}
    if position is not None and np.any(position):
        flex, reversal = _after_position(flex, asset, np.asarray(position, dtype=float),
                                         period_hours)
    offered = [(product, capacity, float(asset.cost[product]), False)
               for product, capacity in flex.capacity.items() if product in asset.cost]
    offered += [(product, undone, cost, True) for product, (undone, cost) in reversal.items()]
    frames = []
    for product, capacity, cost, reverses in offered:
        where = (np.sort(flex.account.period.to_numpy())
                 if flex.account is not None and product[0] == "P" else periods)
        keep = where[capacity[where] > MIN_CAPACITY]
        if len(keep):
            frames.append(pd.DataFrame({
                "bus": asset.bus, "period": keep, "product": product,
                "capacity": capacity[keep], "cost": cost, "device_id": device_id,
                "reverses": reverses}))
    offers = (pd.concat(frames, ignore_index=True) if frames
              else pd.DataFrame(columns=OFFER_COLUMNS[1:]))
    circle = pd.DataFrame(columns=DEVICE_COLUMNS)
    if flex.circle is not None and any(p[0] == "Q" for p in asset.cost) and len(offers):
        p0, q0, s = flex.circle
        at = np.unique(offers.period.to_numpy(dtype=int))
        circle = pd.DataFrame({"device_id": device_id, "period": at, "p_mw": p0[at],
                               "q_mvar": q0[at], "s_mva": s[at]})
    limited = flex.account is not None and any(p[0] == "P" for p in asset.cost)
    account = flex.account if limited and len(offers) else empty_accounts()
    return offers, circle, account
