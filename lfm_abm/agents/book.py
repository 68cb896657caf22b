"""The offer book of a market day: every FSP's capacities and true costs, in a fixed order.

Capacities and costs depend only on the day and on which periods have needs, so the
book is built once per day; each round only the FSPs' markups and withheld shares
change. Keeping one row order for the whole day keeps the bid slots, and so the LP
structure, identical from round to round (warm re-solves).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lfm_abm.agents.assets import asset_offers
from lfm_abm.agents.inventory import GridInventory
from lfm_abm.agents.population import FSPSpec
from lfm_abm.market.bids import families
from lfm_abm.market.capability import DEVICE_COLUMNS
from lfm_abm.market.devices import Devices
from lfm_abm.market.energy import empty_accounts


@dataclass(frozen=True)
class OfferBook:
    """All offers of a day. `group` indexes (FSP, product family) pairs in `groups`."""

    offers: pd.DataFrame  # BID_COLUMNS minus price, plus capacity, cost, fsp, family
    devices: Devices
    groups: pd.DataFrame  # one row per (fsp, family): fsp_id, family
    group: np.ndarray  # group index of every offer
    hours: np.ndarray  # period length of every offer

    def bids(self, markup: np.ndarray, withheld: np.ndarray,
             reservation: float = np.inf) -> pd.DataFrame:
        """Bid table for per-group markups and withheld shares (arrays over groups).

        Price = true cost x (1 + markup), or the `reservation` price for a markup of
        `inf` (the action grid's cap action); quantity = capacity x (1 - withheld share).
        An offer that reverses a day-ahead position may have a negative true cost c (the
        provider gains by undoing it); the DSO pays no negative prices, so it bids
        |c| x markup: 0 when truthful.
        A price above the DSO's reservation price is offered all the same and simply
        not admitted: the FSP learns that from winning nothing.
        """
        slots = self._slots
        markup = markup[self.group]
        at_cap = np.isinf(markup)
        if at_cap.any() and not np.isfinite(reservation):
            raise ValueError("a bid at the reservation price needs a finite reservation price")
        finite = np.where(at_cap, 0.0, markup)
        cost = slots["cost"]
        price = np.where(at_cap, reservation,
                         np.where(cost >= 0, cost * (1.0 + finite), -cost * finite))
        quantity = slots["capacity"] * (1.0 - withheld[self.group])
        return pd.DataFrame({"bid_id": slots["bid_id"], "provider_id": slots["provider_id"],
                             "bus": slots["bus"], "period": slots["period"],
                             "product": slots["product"], "quantity": quantity, "price": price,
                             "device_id": slots["device_id"]})

    @functools.cached_property
    def _slots(self) -> dict[str, np.ndarray]:
        """The offers' fixed columns as arrays: building a bid table is then cheap."""
        return {column: self.offers[column].to_numpy() for column in (
            "bid_id", "provider_id", "bus", "period", "product", "device_id", "cost",
            "capacity")}

    def truthful_bids(self) -> pd.DataFrame:
        """Every offer at its true cost and full capacity: the competitive benchmark."""
        zero = np.zeros(len(self.groups))
        return self.bids(zero, zero)

    def effective_markups(self, bids: pd.DataFrame) -> np.ndarray:
        """Each group's markup of price over true cost, weighted by offered cost (MWh x cost).

        The markup a group's action means when some of its prices are not cost x (1 + m),
        as at the reservation-price action: there each offer's markup is cap / cost - 1.
        """
        energy = bids.quantity.to_numpy() * self.hours
        cost = self._slots["cost"]
        total = self.by_group(cost * energy)
        above = (bids.price.to_numpy() - cost) * energy
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, self.by_group(above) / total, 0.0)

    def by_group(self, values: np.ndarray) -> np.ndarray:
        """Sum a per-offer array within each (FSP, family) group."""
        return np.bincount(self.group, weights=values, minlength=len(self.groups))

    def outcome(self, payment: np.ndarray, awarded: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Revenue, true cost of the awarded MW and profit of each group, EUR."""
        return self.settled(payment, self.offers.cost.to_numpy() * awarded * self.hours)

    def settled(self, paid: np.ndarray, true_cost: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Revenue, true cost and profit of each group from per-offer EUR paid and cost.

        Profit is summed per bid: a bid paid exactly its cost earns zero, not rounding
        noise of either sign (which a learner with no profit yet would amplify).
        """
        revenue = self.by_group(paid)
        margin = self.by_group(paid - true_cost)
        margin[np.abs(margin) <= 1e-9 * (1.0 + revenue)] = 0.0
        return revenue, self.by_group(true_cost), margin


def build_book(fsps: Sequence[FSPSpec], inventory: GridInventory, hours_of_day: np.ndarray,
               periods: np.ndarray, period_hours: float,
               admitted: frozenset[str] = frozenset({"P", "Q"}),
               positions: Mapping[str, np.ndarray] | None = None,
               unmoved: dict | None = None) -> OfferBook:
    """Offers of every FSP for the given periods (those with published needs).

    Only product families the design admits are offered: FSPs do not bid for products
    the DSO does not buy. Energy-limited assets also offer P in the other periods of
    their energy account (`asset_offers`). positions: day-ahead schedules (MW per
    period) by device id, which the offers of those devices start from. unmoved: a
    cache of the offers of assets without a position, by device and periods, for a
    caller that builds many books of one day and inventory (a day-ahead stage).
    """
    positions = positions or {}
    frames, circles, accounts, groups = [], [], [], []
    for spec in fsps:
        for position, asset in enumerate(spec.assets):
            device_id = f"{spec.id}/{position}"
            moved = positions.get(device_id)
            key = (device_id, periods.tobytes())
            if unmoved is not None and moved is None and key in unmoved:
                offers, circle, account = unmoved[key]
            else:
                offers, circle, account = asset_offers(asset, inventory, hours_of_day,
                                                       periods, device_id, moved, period_hours)
                if unmoved is not None and moved is None:
                    unmoved[key] = offers, circle, account
            offers = offers[families(offers["product"]).isin(admitted)]
            if len(offers):
                frames.append(offers.assign(provider_id=spec.id, asset=position))
            if len(circle) and (families(offers["product"]) == "Q").any():
                circles.append(circle)
            if len(account) and (families(offers["product"]) == "P").any():
                accounts.append(account)
        groups += [(spec.id, family) for family in spec.families if family in admitted]
    group_frame = pd.DataFrame(groups, columns=["fsp_id", "family"])
    if frames:
        offers = pd.concat(frames, ignore_index=True)
    else:
        offers = pd.DataFrame(columns=["bus", "period", "product", "capacity", "cost",
                                       "device_id", "reverses", "provider_id", "asset"])
    offers["bid_id"] = (offers.provider_id + "/" + offers.asset.astype(str) + "/"
                        + offers.period.astype(str) + "/" + offers["product"]
                        + np.where(offers.reverses.astype(bool), "/reverse", ""))
    offers["family"] = families(offers["product"])
    key = pd.MultiIndex.from_frame(group_frame)
    group = key.get_indexer(pd.MultiIndex.from_arrays([offers.provider_id, offers.family]))
    devices = Devices(
        pd.concat(circles, ignore_index=True)[DEVICE_COLUMNS] if circles else Devices().capability,
        pd.concat(accounts, ignore_index=True) if accounts else empty_accounts())
    # typed even when empty (a day without needs): object columns break the LP's products
    typed = offers.astype({"bus": int, "period": int, "capacity": float, "cost": float,
                           "reverses": bool})
    return OfferBook(typed, devices,
                     group_frame, group.astype(int), np.full(len(offers), period_hours))
