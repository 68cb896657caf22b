"""Day-ahead positions of an FSP's assets: what each may schedule, and the schedule it makes.

A provider learns one share per block of the day (`market.dayahead.DayAheadParams`);
the share moves every asset of a kind that may take positions within the P flexibility
it has in the forecast: a share q >= 0 sells q x its P_up capacity (more injection or
less consumption), q < 0 buys |q| x its P_down capacity. The energy it moves is worth to
the provider what the same move costs it in the local market, with the energy itself
traded at the day-ahead price instead of taken by the DSO: u_up = -cost(P_up),
u_down = -cost(P_down) (`market.dayahead`). A battery's schedule keeps its state of
charge within [0, E] and ends the day at least at its final level (`clip_to_charge`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lfm_abm.agents.assets import _flex, _in_day_order
from lfm_abm.agents.inventory import GridInventory
from lfm_abm.agents.population import FSPSpec
from lfm_abm.market.dayahead import DayAheadParams, dayahead_profit, loss_bound

#: Enumerate a provider's position profiles for its day-ahead-truthful one up to this many.
MAX_PROFILES = 4096
#: Bisection steps on a battery's discharge scale (2^-40 of a MW: exact for any record).
_BISECTIONS = 40


@dataclass(frozen=True)
class PositionAsset:
    """One asset that may take day-ahead positions, with its capacities and values.

    up, down: MW per period it may sell and buy; value_up, value_down: u of
    `market.dayahead` (EUR/MWh); battery: (energy MWh, initial MWh, final MWh,
    round-trip efficiency) for a battery, else None.
    """

    fsp_id: str
    device_id: str
    bus: int
    up: np.ndarray
    down: np.ndarray
    value_up: float
    value_down: float
    battery: tuple[float, float, float, float] | None = None


def position_assets(fsps: Sequence[FSPSpec], inventory: GridInventory, hours: np.ndarray,
                    kinds: Sequence[str]) -> list[PositionAsset]:
    """Every asset of the population that may take positions, in population order.

    An asset whose kind is not in `kinds`, a shiftable load (its energy must come back
    the same day) or an asset without a P cost in a direction has no capacity there.
    """
    out = []
    for spec in fsps:
        for index, asset in enumerate(spec.assets):
            if asset.kind not in kinds or (asset.kind == "flexible_load"
                                           and asset.param("shift")):
                continue
            device_id = f"{spec.id}/{index}"
            capacity = _flex(asset, inventory, hours, device_id).capacity
            zero = np.zeros(len(hours))
            up = capacity.get("P_up", zero) if "P_up" in asset.cost else zero
            down = capacity.get("P_down", zero) if "P_down" in asset.cost else zero
            if not (up.any() or down.any()):
                continue
            battery = None
            if asset.kind == "storage":
                energy = asset.param("energy_mwh")
                initial = asset.param("soc_initial")
                final = initial if asset.param("soc_final") is None else asset.param("soc_final")
                battery = (energy, initial * energy, final * energy, asset.param("efficiency"))
            out.append(PositionAsset(spec.id, device_id, asset.bus, up, down,
                                     -asset.cost.get("P_up", 0.0),
                                     -asset.cost.get("P_down", 0.0), battery))
    return out


def clip_to_charge(position: np.ndarray, hours: np.ndarray, period_hours: float,
                   battery: tuple[float, float, float, float]) -> np.ndarray:
    """A battery's schedule (MW, + discharges) cut to what its state of charge allows.

    Forward in time, each period's charge or discharge is cut so the state of charge
    stays in [0, E]. If the day then ends below the final level, every discharge is
    scaled down by the largest factor that reaches it (found by bisection; the end level
    grows as discharges shrink, and without discharges it is at least the initial one).
    """
    energy, initial, final, efficiency = battery
    one_way = math.sqrt(efficiency)
    order = _in_day_order(hours)

    def forward(scale: float) -> tuple[np.ndarray, float]:
        out = np.where(position > 0, position * scale, position)
        soc = initial
        for t in order:
            if out[t] > 0:
                out[t] = min(out[t], soc * one_way / period_hours)
                soc -= out[t] * period_hours / one_way
            elif out[t] < 0:
                out[t] = -min(-out[t], (energy - soc) / (period_hours * one_way))
                soc -= out[t] * period_hours * one_way
        return out, soc

    clipped, end = forward(1.0)
    if end >= final - 1e-12:
        return clipped
    low, high = 0.0, 1.0
    for _ in range(_BISECTIONS):
        mid = (low + high) / 2
        low, high = (mid, high) if forward(mid)[1] >= final - 1e-12 else (low, mid)
    return forward(low)[0]


@dataclass(frozen=True)
class PositionBook:
    """The population's position assets on one day, and what their positions mean.

    hours: hour of day of every period; block: the block of every period; price: the
    day-ahead price of every period.
    """

    assets: tuple[PositionAsset, ...]
    params: DayAheadParams
    hours: np.ndarray
    period_hours: float

    @property
    def block(self) -> np.ndarray:
        """The block of each period."""
        return self.params.block(self.hours)

    @property
    def price(self) -> np.ndarray:
        """The day-ahead price of each period, EUR/MWh."""
        return self.params.prices(self.hours)

    @property
    def providers(self) -> list[str]:
        """FSPs with at least one asset that may take positions, in population order."""
        return list(dict.fromkeys(asset.fsp_id for asset in self.assets))

    def schedule(self, shares: Mapping[str, np.ndarray],
                 held: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """MW per period of every asset (device id), from each provider's share per block.

        held: periods where positions are held at zero (a capacity limitation).
        """
        out = {}
        for asset in self.assets:
            q = np.asarray(shares[asset.fsp_id], dtype=float)[self.block]
            mw = np.where(q >= 0, q * asset.up, q * asset.down)
            if held is not None:
                mw = np.where(held, 0.0, mw)
            if asset.battery is not None:
                mw = clip_to_charge(mw, self.hours, self.period_hours, asset.battery)
            out[asset.device_id] = mw
        return out

    def by_bus(self, schedule: Mapping[str, np.ndarray]) -> pd.DataFrame:
        """The schedule summed per bus (periods x buses, MW), for `MarketCase.with_schedule`."""
        frame = pd.DataFrame({asset.device_id: schedule[asset.device_id]
                              for asset in self.assets})
        buses = pd.Series([asset.bus for asset in self.assets], index=frame.columns)
        return frame.T.groupby(buses).sum().T

    def profit(self, schedule: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each provider's day-ahead profit per period, EUR."""
        out = {fsp: np.zeros(len(self.hours)) for fsp in self.providers}
        for asset in self.assets:
            out[asset.fsp_id] += dayahead_profit(schedule[asset.device_id], self.price,
                                                 asset.value_up, asset.value_down,
                                                 self.period_hours)
        return out

    def loss_bound(self, fsp_id: str, periods: np.ndarray, settles: bool) -> float:
        """The most `fsp_id`'s positions can lose in `periods` (EUR), a reward shift.

        Day-ahead losses (`market.dayahead.loss_bound`), plus, when the baseline settles
        a reversal as imbalance (`settles`), |price| + spread per MWh it may move; each
        direction as far as the grid of shares reaches.
        """
        h = self.period_hours
        spread = self.params.imbalance_spread
        sell = max(max(self.params.positions), 0.0)  # the largest shares the grid allows
        buy = max(-min(self.params.positions), 0.0)
        total = 0.0
        for asset in self._assets_of(fsp_id):
            up, down = sell * asset.up[periods], buy * asset.down[periods]
            total += loss_bound(self.price[periods], asset.value_up, asset.value_down,
                                up, down, h)
            if settles:
                total += h * float(np.sum((np.abs(self.price[periods]) + spread) * (up + down)))
        return total

    def truthful_shares(self, fsp_id: str, held: np.ndarray | None = None) -> np.ndarray:
        """The share per block that maximises `fsp_id`'s day-ahead profit alone.

        Without a battery the profit separates by block, and each block is chosen alone
        (exact). A battery couples the blocks through its charge: its provider's
        profiles are enumerated up to MAX_PROFILES, beyond that chosen block by block in
        turn. Ties go to the smaller positions (no trade when the day-ahead market is
        indifferent).
        held: as in `schedule`.
        """
        return self._best(fsp_id, held)[0]

    def truthful_profit(self, fsp_id: str, held: np.ndarray | None = None) -> float:
        """`fsp_id`'s day-ahead profit at its truthful shares (EUR)."""
        return self._best(fsp_id, held)[1]

    def _best(self, fsp_id: str, held: np.ndarray | None) -> tuple[np.ndarray, float]:
        grid = np.asarray(self.params.positions)
        blocks = self.params.blocks
        mine = PositionBook(self._assets_of(fsp_id), self.params, self.hours,
                            self.period_hours)

        def value(shares: np.ndarray) -> float:
            return float(mine.profit(mine.schedule({fsp_id: shares}, held))[fsp_id].sum())

        def best_of(candidates: list[np.ndarray]) -> np.ndarray:
            best, best_value = candidates[0], -np.inf
            for shares in sorted(candidates, key=lambda s: float(np.abs(s).sum())):
                earned = value(shares)
                if earned > best_value + 1e-9:
                    best, best_value = shares, earned
            return best

        coupled = any(asset.battery is not None for asset in mine.assets)
        if coupled and len(grid) ** blocks <= MAX_PROFILES:
            best = best_of([np.array(p) for p in itertools.product(grid, repeat=blocks)])
        else:  # exact without a battery: the profit separates by period, so by block
            best = np.zeros(blocks)
            for block in range(blocks):
                best[block] = best_of([np.where(np.arange(blocks) == block, q, best)
                                       for q in grid])[block]
        return best, value(best)

    def _assets_of(self, fsp_id: str) -> tuple[PositionAsset, ...]:
        return tuple(asset for asset in self.assets if asset.fsp_id == fsp_id)
